import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveModel } from '../hub/index.ts';
import type { ResolveModelOptions } from '../hub/index.ts';
import type { DType } from '../ir/dtype.ts';
import type { HostTensor } from '../ir/host.ts';
import { openCheckpoint } from '../io/safetensors.ts';
import { parseConfig, type ModelConfig } from './config.ts';
import { checkpointNames } from './family.ts';
import { paramSpecs } from './params.ts';

export interface LoadedModel {
  /** Local folder holding the model files. */
  dir: string;
  config: ModelConfig;
  /** float32 weights by Hugging Face name. */
  weights: Map<string, HostTensor>;
}

/** Reads and validates `config.json` from a model folder. */
export async function loadConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new Error(`${path}: not found; a model folder needs config.json, model.safetensors and tokenizer.json`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
  return parseConfig(json, path);
}

/** A model whose checkpoint is open and checked against its config, weights not read yet. */
export interface OpenedModel {
  /** Local folder holding the model files. */
  dir: string;
  config: ModelConfig;
  /**
   * One weight, read from disk on each call and converted to `as` (default float32). A weight stored in `as` already
   * comes as it is (an F16 tensor read as float16 is never widened); a float32 one read as float16 / bfloat16 is
   * rounded a few MiB at a time (core/io/safetensors-read.ts); others are converted one tensor at a time.
   */
  read(name: string, as?: DType): Promise<HostTensor>;
  close(): Promise<void>;
}

/**
 * Opens a model from a local folder or a Hub id (`owner/name[@revision]`): config, and the checkpoint's header
 * checked against it (missing tensors and shape mismatches are all reported together). Weights are read on demand,
 * so a caller that stores some of them differently (quantised) never holds the whole model in float32.
 */
export async function openModel(source: string, hub: ResolveModelOptions = {}): Promise<OpenedModel> {
  const dir = await resolveModel(source, hub);
  const config = await loadConfig(dir);
  const ckpt = await openCheckpoint(dir);
  const problems: string[] = [];
  // Tensor name in the file by model name: the same, except a multimodal checkpoint's text model (family.ts).
  const stored = new Map<string, string>();
  for (const spec of paramSpecs(config)) {
    const name = checkpointNames(spec.name, config.wrappedCheckpoint).find((n) => ckpt.has(n));
    if (!name) {
      problems.push(`missing tensor ${spec.name} (expected shape [${spec.shape}])`);
      continue;
    }
    stored.set(spec.name, name);
    const info = ckpt.info(name);
    if (info.shape.length !== spec.shape.length || info.shape.some((d, i) => d !== spec.shape[i])) {
      problems.push(`${info.file}: tensor ${spec.name} has shape [${info.shape}], expected [${spec.shape}]`);
    }
  }
  if (problems.length) {
    await ckpt.close();
    throw new Error(`${dir}: checkpoint does not match config.json:\n  ${problems.join('\n  ')}`);
  }
  return { dir, config, read: (name, as = 'float32') => ckpt.read(stored.get(name) ?? name, { as }), close: () => ckpt.close() };
}

/** Loads a model (see `openModel`) with every weight converted to float32, one tensor at a time. */
export async function loadModel(source: string, hub: ResolveModelOptions = {}): Promise<LoadedModel> {
  const model = await openModel(source, hub);
  try {
    const weights = new Map<string, HostTensor>();
    for (const spec of paramSpecs(model.config)) weights.set(spec.name, await model.read(spec.name));
    return { dir: model.dir, config: model.config, weights };
  } finally {
    await model.close();
  }
}
