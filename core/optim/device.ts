/**
 * The optimizer update run as compiled graphs (device-graph.ts) on a runner, instead of JavaScript loops: AdamW or
 * SGD as adamw.ts / sgd.ts compute them, optionally after global-norm clipping computed in the graph too.
 *
 * ```ts
 * const opt = DeviceOptimizer.adamw({ weightDecay: 0.1 }, { shapes });
 * const { norm } = await opt.clipAndStep(params, grads, lr, 1.0);   // clip.ts + adamw.ts, as graphs
 * ```
 *
 * State (moments, step counts) is held like the JavaScript optimizers' and saved in the same format, so a checkpoint
 * of either loads into the other. Two ways to run, by runner:
 *   - in this process (onnxruntime-node): each tensor is updated in pieces of at most `pieceElements`, one small
 *     graph per piece length, whose outputs are written over the parameters and moments they replace (`into`): no
 *     output buffers, no copies, and the sessions' working memory stays a few pieces' worth (their memory arena
 *     keeps it between runs, so large intermediates are not page-faulted again at every update);
 *   - on a runner that holds outputs (the sidecar, WebGPU): tensors are updated in buckets of about `bucketBytes`,
 *     one graph each, with the new moments fed back so they stay there between updates (`syncState` reads them).
 * With clipping, a small graph computes the clip scale over all gradients first (within the bucket's graph when
 * there is one bucket) and each update applies it.
 */
import type { HostTensor } from '../ir/host.ts';
import type { Runner } from '../../runners/types.ts';
import { AdamWOptionsSchema, type AdamWConfig, type AdamWOptions } from './adamw.ts';
import { GraphCache } from './device-cache.ts';
import { COEFFICIENTS, normGraph, type UpdateRule } from './device-graph.ts';
import { HeldBuckets } from './device-held.ts';
import { FusedSteps, fusedFeedback, fusedGraph, fusedInPlace, type FusedEntry, type FusedRole, type FusedSpec, type FusedStepFeeds } from './device-fused.ts';
import type { Executable } from '../compile.ts';
import type { Graph } from '../ir/graph.ts';
import type { TensorStore } from '../../runners/holding.ts';
import { f32, updateInPlace, type Entry, type UpdateEnv } from './device-update.ts';
import { emptyState, loadState, saveState, type ParamState, type StateLayout } from './device-state.ts';
import { GroupedOptimizer } from './optimizer.ts';
import type { ParamPolicy } from './policy.ts';
import { SGDOptionsSchema, type SGDConfig, type SGDOptions } from './sgd.ts';
import type { OptimizerStateDict, StateDictOptions } from './state.ts';

export interface DeviceOptions {
  /** Where the update graphs run (default: onnxruntime-node on the CPU, with its memory arena). */
  runner?: Runner;
  /** On a runner that holds outputs: parameter bytes per update graph (default 64 MiB); a larger tensor gets one of its own. */
  bucketBytes?: number;
  /** In this process: the most elements updated by one graph run (default 2^20); larger tensors go in pieces. */
  pieceElements?: number;
  /**
   * Write the clipped gradients back into the caller's gradient arrays (one more output per tensor), so code reading
   * them after the update sees what it used, as after clip.ts's in-place clipping. Default false.
   */
  clippedGrads?: boolean;
}

/** The algorithm and its validated options. */
export type DeviceAlgorithm = { readonly algorithm: 'adamw'; readonly options: AdamWConfig } | { readonly algorithm: 'sgd'; readonly options: SGDConfig };

const DEFAULT_BUCKET_BYTES = 64 * 2 ** 20;
/** 4 MiB of float32: a piece's graph works in a few such buffers, reused run after run. */
const DEFAULT_PIECE_ELEMENTS = 2 ** 20;

export class DeviceOptimizer extends GroupedOptimizer {
  readonly config: DeviceAlgorithm;
  protected override readonly label: string;
  private readonly rule: UpdateRule;
  private readonly layout: StateLayout;
  private state: ParamState;
  private readonly device: Required<Omit<DeviceOptions, 'runner'>> & Pick<DeviceOptions, 'runner'>;
  private readonly cache: GraphCache;
  private readonly env: UpdateEnv;
  /** On a runner that holds outputs: the buckets and where their moments are held. */
  private readonly held: HeldBuckets;
  /** The default runner, made on first use (imported then: this file loads in a browser too). */
  private ownRunner?: Runner;
  /** Fused steps (device-fused.ts), once the trainer asks for them. */
  private fused?: FusedSteps;

  /** AdamW with adamw.ts's options and formulas. */
  static adamw(options: AdamWOptions = {}, policy?: ParamPolicy, device?: DeviceOptions): DeviceOptimizer {
    return new DeviceOptimizer({ algorithm: 'adamw', options: AdamWOptionsSchema.parse(options) }, policy, device);
  }

  /** SGD with sgd.ts's options and formulas. */
  static sgd(options: SGDOptions = {}, policy?: ParamPolicy, device?: DeviceOptions): DeviceOptimizer {
    return new DeviceOptimizer({ algorithm: 'sgd', options: SGDOptionsSchema.parse(options) }, policy, device);
  }

  constructor(config: DeviceAlgorithm, policy?: ParamPolicy, device: DeviceOptions = {}) {
    super(policy);
    this.config = config;
    const bucketBytes = device.bucketBytes ?? DEFAULT_BUCKET_BYTES, pieceElements = device.pieceElements ?? DEFAULT_PIECE_ELEMENTS;
    if (!(bucketBytes > 0)) throw new Error(`DeviceOptimizer: bucketBytes ${bucketBytes} is not a number > 0`);
    if (!(Number.isInteger(pieceElements) && pieceElements > 0)) throw new Error(`DeviceOptimizer: pieceElements ${pieceElements} is not an integer > 0`);
    this.device = { bucketBytes, pieceElements, clippedGrads: device.clippedGrads ?? false, ...(device.runner ? { runner: device.runner } : {}) };
    if (config.algorithm === 'adamw') {
      const { beta1, beta2, eps, weightDecay } = config.options;
      this.rule = { kind: 'adamw', beta1, beta2, eps };
      this.layout = { who: 'DeviceOptimizer(AdamW)', kinds: ['exp_avg', 'exp_avg_sq'], counted: true, hparams: { beta1, beta2, eps, weightDecay } };
    } else {
      const { momentum, dampening, nesterov, weightDecay } = config.options;
      this.rule = { kind: 'sgd', momentum, dampening, nesterov };
      this.layout = { who: 'DeviceOptimizer(SGD)', kinds: ['momentum_buffer'], counted: false, hparams: { momentum, dampening, nesterov: nesterov ? 1 : 0, weightDecay } };
    }
    this.label = this.layout.who;
    this.state = emptyState(this.layout);
    // Moments held by an evicted session come back first (rare: the cache keeps twice a step's graphs).
    this.cache = new GraphCache(() => this.runner(), (key) => this.held.reclaim((_, k) => k === key));
    this.env = {
      rule: this.rule, counted: this.layout.counted, cache: this.cache, clippedGrads: this.device.clippedGrads,
      state: () => this.state,
      coefficients: (entries, lr) => this.coefficients(entries, lr),
      clipScale: (grads, maxNorm) => this.clipScale(grads, maxNorm),
    };
    this.held = new HeldBuckets(this.env, bucketBytes, this.label);
  }

  protected override get weightDecay(): number {
    return this.config.options.weightDecay;
  }

  /** The Optimizer contract's step, without clipping. */
  override async step(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>, lr: number): Promise<void> {
    await this.clipAndStep(params, grads, lr, null);
  }

  /**
   * Clips the gradients to a global norm of at most `maxNorm` (null: no clipping), as clip.ts's `clipGradNorm`, and
   * updates every parameter that has a gradient, as `step` does; returns the norm before clipping.
   */
  async clipAndStep(
    params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>, lr: number, maxNorm: number | null,
  ): Promise<{ norm?: number }> {
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`${this.label}.step: learning rate ${lr} is not a finite number >= 0`);
    if (maxNorm !== null && !(maxNorm >= 0)) throw new Error(`${this.label}: maxNorm ${maxNorm} is not a number >= 0`);
    const entries: Entry[] = [];
    for (const [name, grad] of grads) {
      const param = params.get(name);
      if (!param) throw new Error(`${this.label}.step: gradient for '${name}' but no such parameter`);
      entries.push({ name, param, grad, weightDecay: this.decayPolicy(name) ? this.weightDecay : 0 });
    }
    return this.apply(entries, lr, maxNorm);
  }

  /** One tensor's update with `weightDecay` as given (the contract's `update`); compiles a graph per length. */
  override async update(name: string, param: Float32Array, grad: Float32Array, lr = this.config.options.lr, weightDecay = this.weightDecay): Promise<void> {
    await this.apply([{ name, param, grad, weightDecay }], lr, null);
  }

  override forget(name: string): void {
    for (const a of this.state.arrays) a.delete(name);
    this.state.steps.delete(name);
    this.held.forget(name);
  }

  /** Bytes of moments, wherever they are (held on the runner, in this process, or both after `syncState`). */
  override stateBytes(): number {
    const lengths = new Map<string, number>();
    for (const a of this.state.arrays) for (const [name, x] of a) lengths.set(name, x.length);
    for (const [name, length] of this.held.lengths()) lengths.set(name, length);
    return [...lengths.values()].reduce((n, length) => n + this.state.arrays.length * length * 4, 0);
  }

  override stateDict({ copy = true }: StateDictOptions = {}): OptimizerStateDict {
    const stale = this.held.stale() + (this.fused?.staleCount() ?? 0);
    if (stale) throw new Error(`${this.label}.stateDict: the moments of ${stale} tensors are held on the runner and newer than here; await syncState() first`);
    return saveState(this.layout, this.state, copy);
  }

  override loadStateDict(state: OptimizerStateDict): void {
    this.state = loadState(this.layout, state);
    this.held.clear(); // the next update feeds the loaded moments, which replace what the sessions hold
    this.fused?.reseed();
  }

  /**
   * Reads the state held on the runner back: the moments into the host state (before `stateDict`: a checkpoint),
   * and after fused steps the parameters too, into the arrays `fusedFeeds` was given.
   */
  async syncState(): Promise<void> {
    await this.held.sync();
    await this.fused?.sync();
  }

  /**
   * The gradient graph (outputs `loss` and `grad:<name>` for each of `trainable`) as a fused graph of `role`
   * (device-fused.ts): with this optimizer's clipping (when `clip`) and update when the role updates, else the
   * micro-batch's share of the step's gradient. Compile it with `fusedHolding`.
   */
  fuse(gradGraph: Graph, trainable: readonly string[], clip: boolean, role: FusedRole): Graph {
    return fusedGraph(gradGraph, this.fusedSpec(trainable, clip, role));
  }

  /**
   * What a fused graph's session is compiled with: its feedback pairs, the store every batch shape's shares, and
   * the outputs written over the held tensors they replace (device-fused.ts `fusedInPlace`).
   */
  fusedHolding(trainable: readonly string[], role: FusedRole, clip: boolean): { feedback: Record<string, string>; store: TensorStore; inPlace: string[] } {
    this.fused ??= new FusedSteps(this.env, this.label);
    const spec = this.fusedSpec(trainable, clip, role);
    return { feedback: fusedFeedback(spec), store: this.fused.store, inPlace: fusedInPlace(spec) };
  }

  /**
   * The feeds of a fused graph `exe` for these parameters besides the batch: its scalars, and what of the state the
   * store does not hold yet (the first step, or the first after a reload).
   */
  fusedFeeds(exe: Executable, params: ReadonlyMap<string, HostTensor>, trainable: readonly string[], f: FusedStepFeeds): Record<string, HostTensor> {
    if (!this.fused) throw new Error(`${this.label}.fusedFeeds: call fusedHolding() first`);
    if (!Number.isFinite(f.lr) || f.lr < 0) throw new Error(`${this.label}.step: learning rate ${f.lr} is not a finite number >= 0`);
    const shapes = new Map<string, readonly number[]>();
    const entries = trainable.map((name): FusedEntry => {
      const t = params.get(name);
      if (t?.dtype !== 'float32') throw new Error(`${this.label}.fusedFeeds: no float32 parameter '${name}'`);
      shapes.set(name, t.shape);
      return { name, param: t.data as Float32Array, weightDecay: this.decayPolicy(name) ? this.weightDecay : 0 };
    });
    return this.fused.feeds(exe.inputs.map((i) => i.name), entries, shapes, f);
  }

  /** The sessions of the fused graphs' store were released (with them the store, on a runner): feed the state again. */
  storeReleased(): void {
    this.fused?.reseed();
  }

  /** After a fused graph of `role` ran on `exe`: an update leaves the store newer than here until `syncState`. */
  fusedStepped(exe: Executable, trainable: readonly string[], role: FusedRole): void {
    this.fused!.stepped(exe, trainable, role);
  }

  private fusedSpec(trainable: readonly string[], clip: boolean, role: FusedRole): FusedSpec {
    return { rule: this.rule, clip, role, params: trainable.map((name) => ({ name, decayed: this.decayPolicy(name) && this.weightDecay !== 0 })) };
  }

  /** Releases the compiled graphs (state is kept, read back first when held; the next step compiles again). */
  async release(): Promise<void> {
    await this.syncState();
    this.held.clear();
    this.storeReleased(); // the store goes with the step's sessions
    await this.cache.release();
  }

  private async runner(): Promise<Runner> {
    if (this.device.runner) return this.device.runner;
    // The arena keeps each piece graph's few working buffers between runs: without it every update would map and
    // page-fault them again (with the trainer's 1 MiB mmap threshold, each one).
    this.ownRunner ??= (await import('../../runners/ort-node.ts')).ortNodeRunner({ memArena: true });
    return this.ownRunner;
  }

  private async apply(entries: readonly Entry[], lr: number, maxNorm: number | null): Promise<{ norm?: number }> {
    for (const e of entries) this.checkLengths(e.name, e.param, e.grad, this.state.arrays[0]?.get(e.name));
    if (entries.length === 0) return {};
    // Moments stay on the runner between updates where it holds fed-back outputs (the sidecar, a GPU).
    if (this.device.runner?.holdsOutputs) return this.held.apply(entries, lr, maxNorm);
    return updateInPlace(this.env, entries, lr, maxNorm, this.device.pieceElements);
  }

  /** The global norm and clip scale of these gradients (each an input of the norm graph). */
  private async clipScale(grads: readonly Float32Array[], maxNorm: number): Promise<{ norm: number; scale: HostTensor }> {
    const lengths = grads.map((g) => g.length);
    const exe = await this.cache.get(`norm|${lengths.join(',')}`, () => normGraph(lengths));
    const feeds: Record<string, HostTensor> = { maxNorm: f32(Float32Array.of(maxNorm)) };
    grads.forEach((g, i) => { feeds[`g${i}`] = f32(g); });
    const out = await exe.run(feeds);
    return { norm: Number(out.norm!.data[0]), scale: out.scale! };
  }

  /** The per-tensor scalars of COEFFICIENTS, in float64 like the reference, rounded to float32 when fed. */
  private coefficients(bucket: readonly Pick<Entry, 'name' | 'weightDecay'>[], lr: number): Float32Array {
    const k = COEFFICIENTS[this.rule.kind].length;
    const coef = new Float32Array(bucket.length * k);
    bucket.forEach((e, i) => {
      let values: number[];
      if (this.rule.kind === 'adamw') {
        const t = (this.state.steps.get(e.name) ?? 0) + 1;
        values = [1 - lr * e.weightDecay, lr / (1 - this.rule.beta1 ** t), 1 / Math.sqrt(1 - this.rule.beta2 ** t)];
      } else {
        const first = !this.held.has(e.name) && this.state.arrays[0]?.has(e.name) !== true;
        values = [lr, e.weightDecay, first ? 0 : this.rule.momentum, first ? 1 : 1 - this.rule.dampening];
      }
      coef.set(values, i * k);
    });
    return coef;
  }
}
