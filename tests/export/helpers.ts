/**
 * What the export tests share: the prompts, a short LoRA run on stories260k, and our own greedy continuations
 * (through the plugins' hooks, unmerged, as the run's samples are generated), which every exported model must repeat.
 */
import { join } from 'node:path';
import type { HostTensor, Plugin } from '../../core/index.ts';
import { createGenerator, type GeneratorOptions } from '../../core/generate/generator.ts';
import type { ModelConfig } from '../../core/models/config.ts';
import type { PluginContext } from '../../core/plugin/context.ts';
import type { TrainConfig } from '../../core/train/config.ts';
import { openRun } from '../../core/train/run.ts';
import { train } from '../../core/train/trainer.ts';
import { lora } from '../../plugins/index.ts';
import { quiet, silentProgress, tinyConfig, writeTinyData } from '../train/helpers.ts';

export const PROMPTS = ['Once upon a time', 'The little dog', 'Lily went'];
export const NEW_TOKENS = 24;

/** q and k adapted (GGUF permutes their B with the rotary rows); down_proj with its own rank and alpha (folded into its B). */
export const loraPlugins = (): Plugin[] => [
  lora({ r: 4, alpha: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj'], rankPattern: { down_proj: 2 }, alphaPattern: { down_proj: 4 } }),
];

/** The run's config: 8 steps at a learning rate high enough that the continuations move away from the base model's. */
export const loraRunConfig = (dir: string): TrainConfig => tinyConfig(writeTinyData(dir), join(dir, 'run'), { train: { steps: 8, lr: 3e-2 } });

/** What our engine generates from: the trained run's config, every parameter, and the plugins' model hooks. */
export interface TrainedRun {
  config: ModelConfig;
  weights: Map<string, HostTensor>;
  hooks: NonNullable<GeneratorOptions['hooks']>;
}

/** Trains the LoRA run of `runConfig` and opens its latest checkpoint. */
export async function trainLoraRun(runConfig: TrainConfig): Promise<TrainedRun> {
  await train({ config: runConfig, plugins: loraPlugins(), progress: silentProgress, log: quiet });
  const { m, trained } = await openRun(runConfig, loraPlugins(), quiet);
  const ctx: PluginContext = { ...m.ctx, phase: 'generate' };
  return { config: m.ctx.model.config, weights: new Map([...m.params, ...trained]), hooks: () => m.driver.modelHooks(ctx) };
}

/** Our greedy continuation (new tokens only), stopping before any of `stopTokens`. */
export async function ourGreedy(
  config: ModelConfig, weights: ReadonlyMap<string, HostTensor>, prompt: number[], hooks?: GeneratorOptions['hooks'], stopTokens: number[] = [],
): Promise<number[]> {
  const gen = await createGenerator({ config, weights, hooks, maxLen: 128 });
  try {
    return await gen.generate(prompt, { maxNewTokens: NEW_TOKENS, stopTokens });
  } finally {
    await gen.release();
  }
}
