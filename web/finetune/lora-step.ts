/**
 * LoRA fine-tuning of a model held in memory, as the trainer does it (core/train/setup.ts, graphs.ts): the lora
 * plugin's hooks driven through core's PluginDriver, the trainer's loss graph (`buildLossGraph`), reverse-mode
 * autodiff (`valueAndGrad`), and core/optim's AdamW fused after the gradients in one graph whose adapter and moments stay
 * on the runner (`DeviceOptimizer`, as `train.optimizerOn: 'device'` does on a sidecar). The page runs it on
 * onnxruntime-web; its test runs the same code on onnxruntime-node to check the page's loss.
 */
import { valueAndGrad } from '../../core/autodiff/vjp.ts';
import { compile, type Executable } from '../../core/compile.ts';
import { createGenerator } from '../../core/generate/generator.ts';
import type { Graph } from '../../core/ir/graph.ts';
import type { HostTensor } from '../../core/ir/host.ts';
import type { ModelConfig } from '../../core/models/config.ts';
import { paramSpecs } from '../../core/models/params.ts';
import { DeviceOptimizer } from '../../core/optim/device.ts';
import { PluginDriver } from '../../core/plugin/driver.ts';
import { baseWeightsOf } from '../../core/plugin/hooks.ts';
import type { PluginContext } from '../../core/plugin/context.ts';
import type { Tokenizer } from '../../core/tokenizer/tokenizer.ts';
import { buildLossGraph, DATA_INPUTS } from '../../core/train/graphs.ts';
import { lora } from '../../plugins/lora/index.ts';
import type { Runner } from '../../runners/types.ts';

/**
 * The page's recipe. The run is short, so the data is too: the first 40 lines of data.txt pack into 64 rows of 64
 * tokens, 8 batches of 8, which tens of steps at a high LoRA lr visibly fit (stories260k was pretrained on
 * TinyStories: one pass over new lines of it barely moves the loss). Generation: the prompt, greedy.
 */
export const RECIPE = {
  r: 8, alpha: 16, targets: 'all-linear', lr: 1e-2, seed: 0, batch: 8, seq: 64, lines: 40,
  prompt: 'Once upon a time', maxNewTokens: 40,
} as const;

export interface LoraModel {
  readonly config: ModelConfig;
  readonly driver: PluginDriver;
  readonly ctx: PluginContext;
  /** Loss and `grad:<name>` of every trainable tensor; inputs: base weights, adapter tensors, input_ids, labels. */
  readonly grads: Graph;
  /** The adapter's tensors (lora_A / lora_B), in graph-input order. */
  readonly trainable: readonly string[];
  /** Their current values, updated in place by `step`. */
  readonly adapter: Map<string, HostTensor>;
}

/** Traces the training graph with the lora plugin and initialises the adapter (A Kaiming-uniform, B zero). */
export async function setupLora(config: ModelConfig, weights: ReadonlyMap<string, HostTensor>, tok: Tokenizer, seed: number = RECIPE.seed): Promise<LoraModel> {
  const driver = new PluginDriver([lora({ r: RECIPE.r, alpha: RECIPE.alpha, targets: RECIPE.targets })]);
  const ctx: PluginContext = {
    model: { config, specs: paramSpecs(config) }, run: { dir: '', seed, totalSteps: 0 }, tokenizer: tok, phase: 'train',
    log: () => {}, plugin: <Api>(name: string) => driver.api<Api>(name),
  };
  await driver.validate(ctx);
  const forward = buildLossGraph(driver, ctx, config);
  const pending = forward.inputs
    .filter((i) => !weights.has(i.name) && !(DATA_INPUTS as readonly string[]).includes(i.name))
    .map((i) => ({ name: i.name, shape: i.v.shape as number[] }));
  const adapter = new Map<string, HostTensor>();
  for (const { value } of await driver.collect('params:init', ctx, pending, baseWeightsOf(weights))) {
    for (const [name, t] of value) adapter.set(name, t);
  }
  const chosen = driver.waterfallSync('params:trainable', ctx, new Set<string>());
  const trainable = forward.inputs.map((i) => i.name).filter((n) => chosen.has(n));
  const missing = trainable.filter((n) => !adapter.has(n));
  if (missing.length) throw new Error(`no initial value for ${missing.join(', ')}`);
  return { config, driver, ctx, grads: valueAndGrad(forward, { of: 'loss', wrt: trainable }), trainable, adapter };
}

export interface LoraTrainer {
  /** One step on `batch` (input_ids and shifted labels, int64 [B, T]); returns the loss before the update. */
  step(batch: { input_ids: HostTensor; labels: HostTensor }): Promise<number>;
  /** Reads the trained adapter back into the model's `adapter` tensors, then frees the session. */
  release(): Promise<void>;
}

/**
 * Compiles the step as one graph (core/optim/device-fused.ts): the loss, the adapter's gradients and AdamW's update,
 * base weights resident. The adapter and its moments are fed back into the runner's store (on WebGPU, GPU buffers),
 * so after the first step a step sends the batch and receives the loss; `release` reads the adapter back into
 * `m.adapter` (for generation) and frees the session.
 */
export async function loraTrainer(
  m: LoraModel, weights: ReadonlyMap<string, HostTensor>, opts: { B: number; T: number; lr?: number; runner?: Runner },
): Promise<LoraTrainer> {
  const lr = opts.lr ?? RECIPE.lr;
  const optimizer = DeviceOptimizer.adamw({ lr }, undefined, opts.runner ? { runner: opts.runner } : {});
  const graph = optimizer.fuse(m.grads, m.trainable, false, 'only');
  const exe: Executable = await compile(graph, {
    dims: { B: opts.B, T: opts.T }, resident: weights, runner: opts.runner, ...optimizer.fusedHolding(m.trainable, 'only', false),
  });
  return {
    async step(batch) {
      const out = await exe.run({ ...batch, ...optimizer.fusedFeeds(exe, m.adapter, m.trainable, { lr, maxNorm: null }) });
      optimizer.fusedStepped(exe, m.trainable, 'only');
      return Number(out.loss!.data[0]);
    },
    async release() {
      await optimizer.syncState(); // the adapter, into m.adapter's arrays
      await exe.release();
    },
  };
}

/**
 * Greedy continuation of `prompt` by the model with its adapter, through core/generate (a KV-cached session built
 * with the same plugin hooks, phase 'generate'; base and adapter tensors resident).
 */
export async function generateText(
  m: LoraModel, weights: ReadonlyMap<string, HostTensor>, tok: Tokenizer, promptIds: readonly number[],
  opts: { maxNewTokens: number; runner?: Runner },
): Promise<string> {
  const all = new Map([...weights, ...m.adapter]);
  const ctx: PluginContext = { ...m.ctx, phase: 'generate' };
  const gen = await createGenerator({
    config: m.config, weights: all, hooks: () => m.driver.modelHooks(ctx), runner: opts.runner,
    maxLen: Math.min(m.config.maxPositions, promptIds.length + opts.maxNewTokens + 1),
  });
  try {
    const ids = await gen.generate(promptIds, { maxNewTokens: opts.maxNewTokens, temperature: 0, stopTokens: tok.eosId === null ? [] : [tok.eosId] });
    return tok.decode([...promptIds, ...ids], { skipSpecialTokens: true });
  } finally {
    await gen.release();
  }
}
