import type { HostTensor } from '../ir/host.ts';
import type { ModelConfig } from '../models/config.ts';
import type { ParamSpec } from '../models/params.ts';

/** What every hook receives: the run, the model and the other plugins' APIs. Never globals. */
export interface PluginContext {
  readonly model: { readonly config: ModelConfig; readonly specs: readonly ParamSpec[] };
  readonly run: { readonly dir: string; readonly seed: number; readonly totalSteps: number };
  /**
   * The model's tokenizer, when the run has one (training, evaluation; not the planner): for plugins that start from
   * text, such as prompt tuning initialised from a phrase.
   */
  readonly tokenizer?: { encode(text: string, opts?: { addSpecialTokens?: boolean }): number[] };
  /** What the graph being built is for: training steps get dropout and the like, evaluation and generation do not. */
  readonly phase: 'train' | 'eval' | 'generate';
  /** Prints a line tagged with the plugin's name (and records it in the run's log). */
  log(message: string): void;
  /** The `api` of another plugin in the run, or undefined. */
  plugin<Api>(name: string): Api | undefined;
}

/** Per-step context for loop hooks. */
export interface StepContext extends PluginContext {
  readonly step: number;
  readonly trainable: ReadonlySet<string>;
  /** Values of the symbolic dims for this micro-batch, e.g. { B: 16, T: 64 }. */
  readonly dims: Readonly<Record<string, number>>;
  /** Current values of every parameter (base weights and plugin parameters), by name. Mutable in place. */
  readonly params: Map<string, HostTensor>;
  /**
   * A uniform [0, 1) generator seeded from the run seed, the step and the plugin (each plugin has its own stream,
   * so adding a plugin does not change another's draws); reproducible on resume.
   */
  random(): number;
  /** The per-step seed the plugin streams derive from. */
  readonly stepSeed: number;
  /** Asks the trainer to call `params:trainable` again and rebuild the step (e.g. LISA switching layers). */
  requestRetrace(reason: string): void;
}

export interface StepResult {
  loss: number;
  lr: number;
  gradNorm?: number;
  tokens: number;
  /**
   * The gradients the update used (accumulated over micro-batches, after clipping), by trainable parameter name;
   * absent when the estimator applied its own update. Valid only during the hook: read it, do not keep it.
   * (LISA's gradient-norm sampling, AdaLoRA's sensitivity scores)
   */
  grads?: ReadonlyMap<string, Float32Array>;
}

/** One line of the memory plan. */
export interface MemoryItem {
  component: string;
  bytes: number;
  note?: string;
}
