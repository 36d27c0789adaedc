/**
 * A model folder transformers.js loads as a causal LM from disk: `config.json`, the tokenizer files,
 * `generation_config.json` and `onnx/model.onnx` (the decoder with its key/value cache, weights baked in).
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostTensor } from '../../ir/host.ts';
import type { ModelConfig } from '../../models/config.ts';
import { decoderGraph, DECODER_DIMS } from './decoder.ts';
import { lowerDynamic } from './dynamic.ts';
import { writeOnnxFile } from './file.ts';
import { OnnxUnsupportedError, transformersJsTarget } from './support.ts';

/** Copied from the source folder when present; transformers.js reads the first two (and the template, if any). */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];

export interface OnnxFolderOptions {
  /** Past this many bytes of weights, they go to `onnx/model.onnx_data` (default 1.5 GiB). */
  externalDataThreshold?: number;
}

export interface OnnxExportResult {
  dir: string;
  files: string[];
  /** Bytes written for the ONNX model (and its external data). */
  bytes: number;
  modelType: string;
  externalData: boolean;
}

/** Writes the folder from a model's config, its (merged) float32 weights and the folder its tokenizer comes from. */
export async function writeTransformersJsFolder(
  dir: string, config: ModelConfig, weights: ReadonlyMap<string, HostTensor>, sourceDir: string, opts: OnnxFolderOptions = {},
): Promise<OnnxExportResult> {
  const target = transformersJsTarget(config);
  if (!existsSync(join(sourceDir, 'tokenizer.json'))) {
    throw new OnnxUnsupportedError(`${sourceDir}: no tokenizer.json; transformers.js needs it beside the model: add the model's tokenizer.json to that folder`);
  }
  const graph = decoderGraph(config, { positionOffset: target.positionOffset });
  const resident = new Map<string, HostTensor>();
  const missing: string[] = [];
  for (const { name } of graph.inputs) {
    const t = weights.get(name);
    if (t) resident.set(name, t);
    else if (!isRuntimeInput(name)) missing.push(name);
  }
  if (missing.length) throw new Error(`--format onnx: missing weights ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);

  await mkdir(join(dir, 'onnx'), { recursive: true });
  const model = lowerDynamic(graph, { resident, dimNames: DECODER_DIMS });
  const onnx = writeOnnxFile(join(dir, 'onnx', 'model.onnx'), model, opts.externalDataThreshold);

  const files = [...onnx.files];
  const write = async (name: string, json: unknown) => {
    await writeFile(join(dir, name), `${JSON.stringify(json, null, 2)}\n`);
    files.push(join(dir, name));
  };
  await write('config.json', {
    ...config.raw,
    model_type: target.modelType,
    torch_dtype: 'float32',
    // Which file to load on every device (the browser's wasm default would look for a quantised one), and where the weights are.
    'transformers.js_config': { dtype: 'fp32', ...(onnx.externalData ? { use_external_data_format: true } : {}) },
  });
  for (const f of TOKENIZER_FILES) {
    if (!existsSync(join(sourceDir, f))) continue;
    await copyFile(join(sourceDir, f), join(dir, f));
    files.push(join(dir, f));
  }
  if (existsSync(join(sourceDir, 'generation_config.json'))) {
    await copyFile(join(sourceDir, 'generation_config.json'), join(dir, 'generation_config.json'));
    files.push(join(dir, 'generation_config.json'));
  } else {
    const raw = config.raw;
    await write('generation_config.json', { bos_token_id: raw.bos_token_id ?? null, eos_token_id: raw.eos_token_id ?? null, pad_token_id: raw.pad_token_id ?? null });
  }
  return { dir, files, bytes: onnx.bytes, modelType: target.modelType, externalData: onnx.externalData };
}

const isRuntimeInput = (name: string) => ['input_ids', 'attention_mask', 'position_ids'].includes(name) || name.startsWith('past_key_values.');
