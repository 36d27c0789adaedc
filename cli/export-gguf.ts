/**
 * `export --format gguf | gguf-lora`: a run's merged model, a model folder as it is, or a run's LoRA adapter alone,
 * as GGUF files llama.cpp loads. Run-level checks live here because they need the plugins (LoRA's API).
 */
import { folderArchitecture } from '../core/export/architecture.ts';
import { checkGgufArchitecture, GGUF_QUANTS, writeGgufLora, writeGgufModel, type GgufQuant, type GgufWriteResult, type LoraPair } from '../core/export/gguf/index.ts';
import { exportModelOnnx, exportRunOnnx, type OnnxExportResult } from '../core/export/onnx/index.ts';
import { openModel } from '../core/models/load.ts';
import type { Plugin } from '../core/plugin/hooks.ts';
import type { TrainConfig } from '../core/train/config.ts';
import { mergedWeights, unmergeable } from '../core/train/finish.ts';
import { openRun } from '../core/train/run.ts';
import { LORA, type LoraApi } from '../plugins/lora/index.ts';
import { loraAName, loraBName, loraScaling } from '../plugins/lora/layer.ts';
import { load, type RunCommandOptions } from './run-commands.ts';

export const EXPORT_FORMATS: Readonly<Record<string, string>> = {
  gguf: 'the merged model as one GGUF file for llama.cpp (--quant f32|f16|q8_0)',
  'gguf-lora': "the run's LoRA adapter alone as a llama.cpp LoRA GGUF (apply it to the base model's GGUF)",
  onnx: 'the merged model as a transformers.js folder (--out DIR: config, tokenizer, onnx/model.onnx with its key/value cache)',
};

/** The message for a --format that is not one of {@link EXPORT_FORMATS}. */
export function unknownFormatMessage(format: string): string {
  const list = Object.entries(EXPORT_FORMATS).map(([k, v]) => `  ${k}: ${v}`).join('\n');
  return `unknown --format '${format}'; the formats are:\n${list}\n  (no --format: the merged safetensors folder and the PEFT adapter folder)`;
}

export function parseQuant(q: string | undefined): GgufQuant {
  if (q === undefined) return 'f16';
  if ((GGUF_QUANTS as readonly string[]).includes(q)) return q as GgufQuant;
  throw new Error(`unknown --quant '${q}'; one of ${GGUF_QUANTS.join(', ')}`);
}

/** A refusal the user can act on (a usage problem rather than a failure). */
export class ExportRefusal extends Error {
  override name = 'ExportRefusal';
}

/** The merged model of a run's latest checkpoint as GGUF. Plugins that cannot be merged are refused before loading. */
export async function exportRunGguf(cfg: TrainConfig, plugins: readonly Plugin[], out: string, quant: GgufQuant, log: (l: string) => void): Promise<GgufWriteResult> {
  const cannot = unmergeable(plugins);
  if (cannot.length) {
    const lora = plugins.some((p) => p.name === LORA) ? ' (its LoRA part alone: --format gguf-lora)' : '';
    throw new ExportRefusal(
      `--format gguf: ${cannot.join(', ')} ${cannot.length === 1 ? 'adds' : 'add'} computation that cannot be folded into the base weights, ` +
        `so a merged GGUF would silently drop what was trained; export the adapter instead: tuneforge export --config <file> ` +
        `(without --format) writes it as a PEFT folder${lora}`,
    );
  }
  await precheck(cfg.model);
  const { m, trained, step } = await openRun(cfg, plugins, log);
  const merged = mergedWeights(m, trained);
  log(`writing the merged model of step ${step} as GGUF ${quant}`);
  return writeGgufModel(out, m.ctx.model.config, (n) => merged.get(n)!, m.dir, { quant });
}

/** A model folder (or Hub id) as it is, as GGUF. */
export async function exportModelGguf(source: string, out: string, quant: GgufQuant): Promise<GgufWriteResult> {
  await precheck(source);
  const model = await openModel(source);
  try {
    return await writeGgufModel(out, model.config, (n) => model.read(n), model.dir, { quant });
  } finally {
    await model.close();
  }
}

/** A LoRA run's adapter as llama.cpp's LoRA GGUF; refused when the run trains anything besides LoRA matrices. */
export async function exportRunGgufLora(cfg: TrainConfig, plugins: readonly Plugin[], out: string, log: (l: string) => void): Promise<GgufWriteResult> {
  if (!plugins.some((p) => p.name === LORA)) {
    throw new ExportRefusal(
      `--format gguf-lora needs a LoRA run; this run's plugins are ${plugins.map((p) => p.name).join(', ') || '(none)'}; ` +
        'use --format gguf for the merged model, or export without --format for the PEFT adapter folder',
    );
  }
  await precheck(cfg.model);
  const { m, trained } = await openRun(cfg, plugins, log);
  const api = m.driver.api<LoraApi>(LORA)!;
  const isLora = (n: string) => /\.lora_[AB]\.weight$/.test(n);
  const others = [...trained.keys()].filter((n) => !isLora(n));
  if (others.length) {
    throw new ExportRefusal(
      `--format gguf-lora: the run also trains ${others.slice(0, 3).join(', ')}${others.length > 3 ? ` and ${others.length - 3} more` : ''}, ` +
        'which a LoRA adapter cannot carry; use --format gguf for the merged model',
    );
  }
  const pairs: LoraPair[] = [...api.adapted].map(([module, { r, alpha }]) => ({
    module, a: trained.get(loraAName(module))!, b: trained.get(loraBName(module))!, scaling: loraScaling(r, alpha, api.config.useRslora),
  }));
  const base = typeof m.ctx.model.config.raw._name_or_path === 'string' ? m.ctx.model.config.raw._name_or_path : String(cfg.model);
  return writeGgufLora(out, m.ctx.model.config, pairs, { name: `LoRA of ${base}` });
}

/**
 * Refuses an architecture GGUF export cannot write before anything is loaded, with a GGUF-specific message (the
 * model loader would otherwise refuse it for training reasons). A Hub id or unreadable folder is checked after
 * loading instead, by the writer.
 */
async function precheck(source: string): Promise<void> {
  const found = await folderArchitecture(source);
  if (found) checkGgufArchitecture(found.arch, found.where);
}

export interface GgufCommandOptions {
  format: string;
  out: string;
  quant?: string;
  /** A model folder exported as it is (instead of a run). */
  model?: string;
  run?: RunCommandOptions;
}

export async function exportGgufCommand(o: GgufCommandOptions, log: (l: string) => void = (l) => console.error(l)): Promise<void> {
  if (o.format === 'onnx') return exportOnnxCommand(o, log);
  let result: GgufWriteResult;
  if (o.format === 'gguf') {
    const quant = parseQuant(o.quant);
    if (o.model !== undefined) result = await exportModelGguf(o.model, o.out, quant);
    else {
      const { config, plugins } = await load(o.run!);
      result = await exportRunGguf(config, plugins, o.out, quant, log);
    }
  } else if (o.format === 'gguf-lora') {
    if (o.model !== undefined) throw new ExportRefusal('--format gguf-lora exports a run\'s adapter: give --config, not --model');
    if (o.quant !== undefined) throw new ExportRefusal('--format gguf-lora writes F32 matrices; --quant applies to --format gguf');
    const { config, plugins } = await load(o.run!);
    result = await exportRunGgufLora(config, plugins, o.out, log);
  } else throw new ExportRefusal(unknownFormatMessage(o.format));
  for (const n of result.notes) log(`note: ${n}`);
  const types = Object.entries(result.types).map(([t, n]) => `${t} ${n}`).join(', ');
  log(`wrote ${result.path}: ${(result.bytes / 2 ** 20).toFixed(2)} MiB, tensors ${types}`);
  console.log(result.path);
}

/** `--format onnx`: the transformers.js folder, from a run or a model folder. */
async function exportOnnxCommand(o: GgufCommandOptions, log: (l: string) => void): Promise<void> {
  if (o.quant !== undefined) throw new ExportRefusal('--format onnx writes float32 weights; --quant applies to --format gguf');
  let result: OnnxExportResult;
  if (o.model !== undefined) result = await exportModelOnnx(o.model, o.out);
  else {
    const { config, plugins } = await load(o.run!);
    result = await exportRunOnnx(config, plugins, o.out, log);
  }
  log(`wrote ${result.dir} for transformers.js (model_type ${result.modelType}): onnx/model.onnx${result.externalData ? ' + model.onnx_data' : ''}, ${(result.bytes / 2 ** 20).toFixed(2)} MiB`);
  console.log(result.dir);
}
