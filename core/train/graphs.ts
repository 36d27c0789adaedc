/** The graphs a run compiles: the training loss (with every plugin's hooks) and its evaluation variant. */
import { valueAndGrad } from '../autodiff/vjp.ts';
import { compile, type CompileOptions, type Executable } from '../compile.ts';
import type { Runner } from '../../runners/types.ts';
import { trace, type Graph, type Tensor, type Var } from '../ir/graph.ts';
import type { HostTensor } from '../ir/host.ts';
import * as op from '../ops/api.ts';
import * as nn from '../nn/index.ts';
import type { ModelConfig } from '../models/config.ts';
import { buildCausalLM } from '../models/llama.ts';
import type { PluginContext } from '../plugin/context.ts';
import type { PluginDriver } from '../plugin/driver.ts';
import type { EstimatorStep, GradientEstimator } from '../plugin/estimator.ts';
import { collectGarbage } from '../memory/allocator.ts';

export const DATA_INPUTS = ['input_ids', 'labels'] as const;

/**
 * Traces the model with every plugin's hooks. Outputs: `loss` (mean over counted tokens, plus plugin terms), and in
 * the eval phase also `row_nll` [B] and `row_count` [B] (summed negative log-likelihood and counted tokens per row).
 */
export function buildLossGraph(driver: PluginDriver, ctx: PluginContext, config: ModelConfig): Graph {
  return buildLossGraphWithBoundaries(driver, ctx, config).graph;
}

/** As buildLossGraph, also returning the block outputs (cut points for activation checkpointing). */
export function buildLossGraphWithBoundaries(driver: PluginDriver, ctx: PluginContext, config: ModelConfig): { graph: Graph; boundaries: Var[] } {
  let boundaries: Var[] = [];
  const graph = trace((g): Record<string, Tensor> => {
    const m = buildCausalLM(g, config, { batch: 'B', seq: 'T', hooks: driver.modelHooks(ctx) });
    boundaries = m.blockOutputs.map((t) => t.v);
    const labels = g.input('labels', 'int64', ['B', 'T']);
    const ce = nn.crossEntropy(m.logits, labels);
    // Mixture-of-experts models with output_router_logits: the load-balancing term is part of the training loss.
    const loss = driver.waterfallSync('model:loss', ctx, m.auxLoss ? op.add(ce, m.auxLoss) : ce, g);
    if (ctx.phase !== 'eval') return { loss };
    const nll = nn.crossEntropy(m.logits, labels, { reduction: 'none' }); // [B, T]
    const counted = op.cast(op.greaterEqual(labels, op.scalar(labels, 0)), 'float32');
    return { loss, row_nll: op.sum(nll, -1), row_count: op.sum(counted, -1) };
  });
  return { graph, boundaries };
}

/**
 * Compiled executables by key (trainable set + shapes), least recently used evicted, so each shape compiles once.
 * The limit must hold every session one step uses: activation checkpointing needs one per stage (SmolLM2-135M: the
 * forward pass and 31 stages), and a smaller cache would recompile all of them every step.
 */
export class CompileCache {
  private readonly cache = new Map<string, Promise<Executable>>();
  /** Set by `clear()`: the next session replaces released ones, so its build waits for their memory (compile's `settle`). */
  private replacing = false;
  /**
   * `runner`: where the sessions run (compile's default, onnxruntime-node in this process, when absent).
   * `resident`: for a runner with `residentWeights`, the inputs of a graph to compile into its session (the frozen
   * weights as they are now). Whoever changes one of them must `clear()` the cache, as a change of trainable set does.
   * `orderedScatter`: compile's option of that name, for every graph (train.deterministic).
   */
  constructor(
    private readonly limit = 96,
    private readonly runner?: Runner,
    private readonly resident?: (graph: Graph) => ReadonlyMap<string, HostTensor>,
    private readonly orderedScatter = true,
  ) {}

  /** `holding`: a session that keeps state between runs (compile's `store` and `feedback`). */
  get(key: string, graph: () => Graph, dims: Record<string, number>, holding: Pick<CompileOptions, 'store' | 'feedback' | 'inPlace'> = {}): Promise<Executable> {
    let hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key); // re-insert: Map order is recency order
      this.cache.set(key, hit);
    } else {
      // Compiling leaves tens of MB of JavaScript garbage (the ONNX model bytes, lowering tables); collected now,
      // it is not still there when the new session's first run reaches the step's peak.
      const settle = this.replacing;
      this.replacing = false;
      const g = graph();
      const resident = this.runner?.residentWeights && this.resident ? this.resident(g) : undefined;
      hit = compile(g, { dims, settle, runner: this.runner, ...holding, ...(resident?.size ? { resident } : {}), orderedScatter: this.orderedScatter }).then((exe) => {
        collectGarbage();
        return exe;
      });
      this.cache.set(key, hit);
      if (this.cache.size > this.limit) {
        const [oldest] = this.cache.keys();
        const evicted = this.cache.get(oldest!)!;
        this.cache.delete(oldest!);
        void evicted.then((e) => e.release());
      }
    }
    return hit;
  }

  async clear(): Promise<void> {
    const all = [...this.cache.values()];
    this.cache.clear();
    this.replacing = all.length > 0;
    for (const e of all) await (await e).release();
  }
}

/** The latest gradient graph of each forward graph, by trainable set (the set changes only with a retrace). */
const gradientGraphs = new WeakMap<Graph, { key: string; graph: Graph }>();

/** `loss` and `grad:<name>` for each of `trainable`: reverse-mode autodiff of `forward`, built once per trainable set. */
export function lossGradient(forward: Graph, trainable: readonly string[]): Graph {
  const key = trainable.join(',');
  let cached = gradientGraphs.get(forward);
  if (cached?.key !== key) gradientGraphs.set(forward, (cached = { key, graph: valueAndGrad(forward, { of: 'loss', wrt: [...trainable] }) }));
  return cached.graph;
}

/** The default estimator: reverse-mode autodiff of the loss with respect to the trainable parameters. */
export function backprop(): GradientEstimator {
  return {
    name: 'backprop',
    async estimate(s: EstimatorStep) {
      const key = `grad|${s.trainable.join(',')}`;
      const exe = await s.compile(lossGradient(s.forward, s.trainable), key);
      const feeds: Record<string, HostTensor> = { ...s.feeds };
      for (const input of exe.inputs) if (!(input.name in feeds)) feeds[input.name] = s.ctx.params.get(input.name)!;
      const out = await exe.run(feeds);
      const grads = new Map<string, Float32Array>();
      for (const name of s.trainable) grads.set(name, out[`grad:${name}`]!.data as Float32Array);
      return { loss: Number(out.loss!.data[0]), grads };
    },
  };
}
