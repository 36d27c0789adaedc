/**
 * The kit's view of a run: a config for the tiny model (or any model folder), the model set up with the plugins
 * as the trainer sets it up, and a batch to feed it (random token ids, labels shifted, every plugin's per-step feeds).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostTensor, seededRandom, type HostTensor, type Plugin, type StepContext } from '../core/index.ts';
import { mulberry32 } from '../core/data/rng.ts';
import { parseTrainConfig, type TrainConfig, type TrainConfigInput } from '../core/train/config.ts';
import { setupModel, trainableSet, type RunModel } from '../core/train/setup.ts';
import { writeTinyDataset, writeTinyLlama, type TinyLlamaOptions } from './tiny-model.ts';

/** A folder of its own under the OS temp dir. */
export const scratchDir = (label: string) => mkdtempSync(join(tmpdir(), `tuneforge-kit-${label}-`));

export interface KitModelOptions {
  /** A model folder; default: a tiny random Llama written to a temp folder. */
  model?: string;
  tiny?: TinyLlamaOptions;
}

/** The model folder a check runs on. */
export async function kitModel(o: KitModelOptions = {}): Promise<string> {
  return o.model ?? writeTinyLlama(join(scratchDir('model'), 'tiny-llama'), o.tiny);
}

/** A validated config for a short run of the kit (the tiny dataset, a few steps, nothing exported). */
export function kitConfig(model: string, output: string, over: Partial<TrainConfigInput> = {}): TrainConfig {
  const { train, data, eval: ev, checkpoint, export: exp, ...rest } = over;
  return parseTrainConfig({
    model, output, seed: 1,
    data: { train: writeTinyDataset(join(output, '..', 'data')), maxLength: 32, ...data },
    train: { steps: 4, batchSize: 4, lr: 1e-2, ...train },
    eval: { baseline: false, ...ev },
    checkpoint: { ...checkpoint },
    export: { merged: false, adapters: false, ...exp },
    ...rest,
  }, 'kit config');
}

export const quietLog = (line: string): void => {
  if (process.env.TUNEFORGE_KIT_LOG) console.error(line);
};

/** The model with the plugins, as the trainer sets it up, and its trainable set. */
export async function setupKitModel(model: string, plugins: readonly Plugin[]): Promise<{ m: RunModel; trainable: string[] }> {
  const cfg = kitConfig(model, join(scratchDir('setup'), 'run'));
  const m = await setupModel(cfg, plugins, () => 4, quietLog);
  return { m, trainable: trainableSet(m) };
}

/** Deterministic N(0, 1) draws (Box-Muller over mulberry32). */
export function gaussian(seed: number): () => number {
  const u = mulberry32(seed || 1);
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

/** A batch of random token ids (B x T) with next-token labels, plus every plugin's per-step feeds. */
export async function kitFeeds(m: RunModel, trainable: readonly string[], dims: { B: number; T: number }, seed = 7): Promise<Record<string, HostTensor>> {
  const vocab = m.ctx.model.config.vocabSize;
  const rand = gaussian(seed);
  const ids = new BigInt64Array(dims.B * dims.T).map(() => BigInt(Math.floor(Math.abs(rand() * 1e6)) % Math.min(vocab, 256)));
  const labels = new BigInt64Array(dims.B * dims.T).fill(-100n);
  for (let b = 0; b < dims.B; b++) for (let t = 0; t + 1 < dims.T; t++) labels[b * dims.T + t] = ids[b * dims.T + t + 1]!;
  const feeds: Record<string, HostTensor> = {
    input_ids: hostTensor('int64', [dims.B, dims.T], ids),
    labels: hostTensor('int64', [dims.B, dims.T], labels),
  };
  const ctx: StepContext = {
    ...m.ctx, step: 0, trainable: new Set(trainable), dims, params: m.params, random: seededRandom(seed), stepSeed: seed,
    requestRetrace: () => {},
  };
  for (const { value } of await m.driver.collect('step:feeds', ctx)) Object.assign(feeds, value);
  return feeds;
}
