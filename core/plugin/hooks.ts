/**
 * The hooks a plugin can implement, named `area:event` after the training loop's events, and how each is called.
 *
 * Calling styles:
 * - `collect`:    every plugin is called; non-empty results are gathered (validation problems, memory items).
 * - `waterfall`:  plugins are called in order, each receiving the previous result (trainable set, loss, merged weights).
 * - `chain`:      plugins wrap each other around a default implementation; each gets `next` (linear layers, params).
 * - `first`:      plugins are called in order until one returns something (the gradient estimator).
 * - `sequential`: every plugin is called in order and awaited (loop events).
 */
import type { GraphBuilder, Tensor } from '../ir/graph.ts';
import type { HostTensor } from '../ir/host.ts';
import type { AttentionInputs, LinearSite, TokenEmbeddings } from '../models/llama.ts';
import type { GradientEstimator } from './estimator.ts';
import type { MemoryItem, PluginContext, StepContext, StepResult } from './context.ts';

export type LinearFn = (site: LinearSite, x: Tensor, weight: Tensor, bias: Tensor | undefined) => Tensor;
export type ParamFn = (g: GraphBuilder, name: string, shape: number[]) => Tensor;
export type EmbeddingsFn = (e: TokenEmbeddings) => TokenEmbeddings;
export type AttentionFn = (a: AttentionInputs) => AttentionInputs;

/** A new graph input created by a plugin while the model was built, waiting for its initial value. */
export interface PendingParam {
  name: string;
  shape: readonly number[];
}

/**
 * The base model's weights as `params:init` sees them: read from the checkpoint one at a time, in float32, on
 * request. A plugin that stores a base weight differently (NF4) reads, converts and drops each one, so the whole
 * model is never resident in float32.
 */
export interface BaseWeights {
  has(name: string): boolean;
  /** The weight in float32; throws for a name the model does not have. */
  read(name: string): Promise<HostTensor>;
}

/** `BaseWeights` over weights already in memory (tests, benchmarks, models built in code). */
export function baseWeightsOf(weights: ReadonlyMap<string, HostTensor>): BaseWeights {
  return {
    has: (name) => weights.has(name),
    read: async (name) => {
      const w = weights.get(name);
      if (!w) throw new Error(`no base weight '${name}'`);
      return w;
    },
  };
}

export interface PluginHooks {
  /** Problems with this plugin's options or with the combination (all reported together before anything runs). */
  'config:validate'(ctx: PluginContext): string[] | void;
  /** Computes a linear layer; call `next` for the layers you leave alone. (LoRA, adapters, NF4 bases) */
  'model:linear'(ctx: PluginContext, site: LinearSite, x: Tensor, weight: Tensor, bias: Tensor | undefined, next: LinearFn): Tensor;
  /** Supplies a parameter tensor to the graph; call `next` for the default graph input. (quantised storage) */
  'model:param'(ctx: PluginContext, g: GraphBuilder, name: string, shape: number[], next: ParamFn): Tensor;
  /**
   * Changes the rows entering the decoder; call `next` first. Prepended rows count in `virtualRows` (their logits
   * are dropped) and in `lead` (real tokens' positions start after them). (prompt tuning, P-tuning)
   */
  'model:embeddings'(ctx: PluginContext, e: TokenEmbeddings, next: EmbeddingsFn): TokenEmbeddings;
  /** Changes one layer's keys, values (after the rotary embedding) and mask; call `next` first. (prefix tuning) */
  'model:attention'(ctx: PluginContext, a: AttentionInputs, next: AttentionFn): AttentionInputs;
  /** Adds terms to the scalar training loss inside the graph. (AdaLoRA's orthogonality regulariser) */
  'model:loss'(ctx: PluginContext, loss: Tensor, g: GraphBuilder): Tensor;
  /**
   * Initial values for graph inputs this plugin created. (LoRA A and B; NF4 codes, quantised from `base`)
   * `base` reads the base weights (float32), for plugins that derive their inputs from them. A base weight that no
   * longer is a graph input (a `model:param` hook built it from other inputs instead of calling `next`) is never
   * loaded by the trainer: only this read brings it into memory, so drop it once converted, and restore a
   * full-precision value for exports in `export:base`.
   */
  'params:init'(ctx: PluginContext, pending: readonly PendingParam[], base?: BaseWeights): Map<string, HostTensor> | void | Promise<Map<string, HostTensor> | void>;
  /** Decides which inputs receive gradients; called at start and whenever a plugin asks for a retrace. */
  'params:trainable'(ctx: PluginContext, current: ReadonlySet<string>): ReadonlySet<string>;
  /** Replaces backpropagation. (zeroth-order optimisers, Forward-Grad) */
  'step:estimator'(ctx: PluginContext): GradientEstimator | undefined;
  /** Extra per-step inputs for graph inputs this plugin created. (dropout masks, perturbation seeds) */
  'step:feeds'(ctx: StepContext): Record<string, HostTensor> | void;
  'train:start'(ctx: PluginContext): void | Promise<void>;
  'step:before'(ctx: StepContext): void | Promise<void>;
  /** After the optimizer update. (LISA's layer switch, AdaLoRA's rank allocation) */
  'step:after'(ctx: StepContext, result: StepResult): void | Promise<void>;
  'eval:after'(ctx: PluginContext, metrics: Record<string, number>): void | Promise<void>;
  'train:end'(ctx: PluginContext): void | Promise<void>;
  /**
   * This plugin's state for checkpoints, restored with `state:load` on resume: JSON values, and tensors
   * (HostTensor values at the top level, e.g. momentum buffers) which are stored in the checkpoint's tensor file.
   */
  'state:save'(ctx: PluginContext): Record<string, unknown> | void;
  'state:load'(ctx: PluginContext, state: Record<string, unknown>): void;
  /**
   * Full-precision values of base weights this plugin replaced in memory (see `params:init`), put back before any
   * `export:merge` runs, so merges see them whatever the plugin order. (NF4: the dequantised weights)
   */
  'export:base'(ctx: PluginContext, weights: Map<string, HostTensor>): Map<string, HostTensor>;
  /** Folds the plugin's parameters into the base weights for a merged export. (LoRA merge) */
  'export:merge'(ctx: PluginContext, weights: Map<string, HostTensor>, trained: ReadonlyMap<string, HostTensor>): Map<string, HostTensor>;
  /** Writes the plugin's own artifacts into `dir` (e.g. a PEFT adapter); returns the paths written. */
  'export:artifacts'(ctx: PluginContext, dir: string, trained: ReadonlyMap<string, HostTensor>): Promise<string[]> | string[] | void;
  /** What the plugin adds to or removes from a run's memory, for the planner. */
  'memory:plan'(ctx: PluginContext): MemoryItem[] | void;
}

export type HookName = keyof PluginHooks;
export type HookStyle = 'collect' | 'waterfall' | 'chain' | 'first' | 'sequential';

export const HOOK_STYLES = {
  'config:validate': 'collect',
  'model:linear': 'chain',
  'model:param': 'chain',
  'model:embeddings': 'chain',
  'model:attention': 'chain',
  'model:loss': 'waterfall',
  'params:init': 'collect',
  'params:trainable': 'waterfall',
  'step:estimator': 'first',
  'step:feeds': 'collect',
  'train:start': 'sequential',
  'step:before': 'sequential',
  'step:after': 'sequential',
  'eval:after': 'sequential',
  'train:end': 'sequential',
  'state:save': 'collect',
  'state:load': 'sequential',
  'export:base': 'waterfall',
  'export:merge': 'waterfall',
  'export:artifacts': 'collect',
  'memory:plan': 'collect',
} as const satisfies Record<HookName, HookStyle>;

/**
 * A plugin: a plain object with a namespaced name and any of the hooks. Write a factory returning one:
 *
 * ```ts
 * export function myPlugin(options: MyOptions = {}): Plugin {
 *   return { name: 'acme:my-plugin', 'step:after': (ctx) => ctx.log(`step ${ctx.step} done`) };
 * }
 * ```
 */
export interface Plugin<Api = unknown> extends Partial<PluginHooks> {
  /** Unique, namespaced (`tuneforge:lora`, `@acme/plugin`). */
  name: string;
  /** Runs before (`pre`) or after (`post`) plugins without `enforce`; order within a group is the config's order. */
  enforce?: 'pre' | 'post';
  /** Names of plugins this one needs in the same run. */
  requires?: string[];
  /** Names of plugins this one cannot be combined with. */
  conflicts?: string[];
  /** A public API other plugins reach with `ctx.plugin(name)`. */
  api?: Api;
  /**
   * False when what the plugin adds cannot be folded into the base weights (non-linear adapters, prefix and prompt
   * tuning): a merged export is then skipped (`export.merged: 'auto'`) or refused before the run (`true`).
   */
  mergeable?: boolean;
  /** The options the plugin was created with (JSON), recorded in checkpoints and exports. */
  options?: Record<string, unknown>;
}
