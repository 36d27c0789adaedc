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
import { COEFFICIENTS, momentSlots, normGraph, updateGraph, type ClipMode, type UpdateRule } from './device-graph.ts';
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

interface Entry { name: string; param: Float32Array; grad: Float32Array; weightDecay: number }
/** Elements [start, end) of an entry's tensors. */
interface Piece { entry: Entry; start: number; end: number }

const f32 = (data: Float32Array): HostTensor => ({ dtype: 'float32', shape: [data.length], data });

/**
 * Copies a graph output into the array it replaces and frees the output's memory at once (detaching its buffer):
 * left to the collector, a bucket's outputs of every step would pile up as garbage the size of the whole state.
 */
function copyAndFree(from: Float32Array, into: Float32Array): void {
  into.set(from);
  const buffer = from.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer };
  if (typeof buffer.transfer === 'function' && from.byteOffset === 0 && from.byteLength === buffer.byteLength) buffer.transfer(0);
}

export class DeviceOptimizer extends GroupedOptimizer {
  readonly config: DeviceAlgorithm;
  protected override readonly label: string;
  private readonly rule: UpdateRule;
  private readonly layout: StateLayout;
  private state: ParamState;
  private readonly device: Required<Omit<DeviceOptions, 'runner'>> & Pick<DeviceOptions, 'runner'>;
  private readonly cache: GraphCache;
  /** The default runner, made on first use (imported then: this file loads in a browser too). */
  private ownRunner?: Runner;
  /**
   * On a runner that holds outputs (the sidecar, WebGPU): where each tensor's moments are held, the bucket graph and
   * its position there. Until `syncState` reads them back (`synced`), the host arrays of such a tensor are stale.
   */
  private readonly heldIn = new Map<string, { key: string; index: number; length: number; synced: boolean }>();

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
    // Moments held by an evicted session come back first (rare: the cache keeps twice a step's graphs).
    this.cache = new GraphCache(() => this.runner(), (key) => this.reclaim((_, h) => h.key === key));
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
    this.heldIn.delete(name); // the session's copy is replaced by a fed one if the tensor trains again
  }

  /** Bytes of moments, wherever they are (held on the runner, in this process, or both after `syncState`). */
  override stateBytes(): number {
    const lengths = new Map<string, number>();
    for (const a of this.state.arrays) for (const [name, x] of a) lengths.set(name, x.length);
    for (const [name, { length }] of this.heldIn) lengths.set(name, length);
    return [...lengths.values()].reduce((n, length) => n + this.state.arrays.length * length * 4, 0);
  }

  override stateDict({ copy = true }: StateDictOptions = {}): OptimizerStateDict {
    const stale = [...this.heldIn.values()].filter((h) => !h.synced).length;
    if (stale) throw new Error(`${this.label}.stateDict: the moments of ${stale} tensors are held on the runner and newer than here; await syncState() first`);
    return saveState(this.layout, this.state, copy);
  }

  override loadStateDict(state: OptimizerStateDict): void {
    this.state = loadState(this.layout, state);
    this.heldIn.clear(); // the next update feeds the loaded moments, which replace what the sessions hold
  }

  /** Reads the moments held on the runner back into the host state (before `stateDict`: a checkpoint). */
  async syncState(): Promise<void> {
    const slots = momentSlots(this.rule);
    for (const [name, held] of this.heldIn) {
      if (held.synced) continue;
      const { key, index, length } = held;
      const exe = await this.cache.peek(key)!;
      for (const [j, slot] of slots.entries()) {
        const t = await exe.readHeld!(`${slot}${index}`);
        if (t.data.length !== length) throw new Error(`${this.label}: held '${slot}${index}' of '${name}' has ${t.data.length} elements, expected ${length}`);
        const own = this.state.arrays[j]!, current = own.get(name);
        if (current) current.set(t.data as Float32Array);
        else own.set(name, Float32Array.from(t.data as Float32Array));
      }
      held.synced = true; // the session keeps its copy, equal to this one, for the next update
    }
  }

  /** Moves the moments of the tensors `which` picks back to the host for good (their session changes or goes). */
  private async reclaim(which: (name: string, held: { key: string }) => boolean): Promise<void> {
    if (![...this.heldIn].some(([name, h]) => which(name, h))) return;
    await this.syncState();
    for (const [name, h] of this.heldIn) if (which(name, h)) this.heldIn.delete(name);
  }

  /** Releases the compiled graphs (state is kept, read back first when held; the next step compiles again). */
  async release(): Promise<void> {
    await this.syncState();
    this.heldIn.clear();
    await this.cache.release();
  }

  private async runner(): Promise<Runner> {
    if (this.device.runner) return this.device.runner;
    // The arena keeps each piece graph's few working buffers between runs: without it every update would map and
    // page-fault them again (with the trainer's 1 MiB mmap threshold, each one).
    this.ownRunner ??= (await import('../../runners/ort-node.ts')).ortNodeRunner({ memArena: true });
    return this.ownRunner;
  }

  /** Whether moments stay on the runner between updates (it holds fed-back outputs where its sessions run). */
  private get holding(): boolean {
    return this.device.runner?.holdsOutputs === true;
  }

  private hasState(name: string): boolean {
    return this.heldIn.has(name) || this.state.arrays[0]?.has(name) === true;
  }

  private async apply(entries: readonly Entry[], lr: number, maxNorm: number | null): Promise<{ norm?: number }> {
    for (const e of entries) this.checkLengths(e.name, e.param, e.grad, this.state.arrays[0]?.get(e.name));
    if (entries.length === 0) return {};
    return this.holding ? this.applyInBuckets(entries, lr, maxNorm) : this.applyInPlace(entries, lr, maxNorm);
  }

  /** The clip norm and scale of the pieces' gradients (each piece an input of the norm graph). */
  private async clipScale(pieces: readonly { grad: Float32Array }[], maxNorm: number): Promise<{ norm: number; scale: HostTensor }> {
    const lengths = pieces.map((p) => p.grad.length);
    const exe = await this.cache.get(`norm|${lengths.join(',')}`, () => normGraph(lengths));
    const feeds: Record<string, HostTensor> = { maxNorm: f32(Float32Array.of(maxNorm)) };
    pieces.forEach((p, i) => { feeds[`g${i}`] = f32(p.grad); });
    const out = await exe.run(feeds);
    return { norm: Number(out.norm!.data[0]), scale: out.scale! };
  }

  /** In this process: piece by piece, each graph's outputs written over the arrays they replace. */
  private async applyInPlace(entries: readonly Entry[], lr: number, maxNorm: number | null): Promise<{ norm?: number }> {
    const pieces = this.piecesOf(entries);
    const lengths = new Set(pieces.map((p) => `${p.end - p.start}|${p.entry.weightDecay !== 0}`));
    this.cache.reserve(2 * (lengths.size + 1));
    const view = (a: Float32Array, p: Piece) => a.subarray(p.start, p.end);
    const clip = maxNorm === null ? undefined : await this.clipScale(pieces.map((p) => ({ grad: view(p.entry.grad, p) })), maxNorm);
    const clippedGrads = this.device.clippedGrads && clip !== undefined;
    const slots = momentSlots(this.rule);
    for (const e of entries) {
      const coef = f32(this.coefficients([e], lr)); // before the moments exist: SGD's first step is told so
      const moments = slots.map((_, j) => {
        const own = this.state.arrays[j]!;
        if (!own.has(e.name)) own.set(e.name, new Float32Array(e.param.length)); // a first update starts from zeros
        return own.get(e.name)!;
      });
      for (const piece of pieces.filter((p) => p.entry === e)) {
        const n = piece.end - piece.start, decayed = e.weightDecay !== 0;
        const key = `piece|${clip ? 'scale' : 'none'}|${clippedGrads}|${n}|${Number(decayed)}`;
        const exe = await this.cache.get(key, () => updateGraph({ rule: this.rule, lengths: [n], decayed: [decayed], clip: clip ? 'scale' : 'none', clippedGrads }));
        const feeds: Record<string, HostTensor> = { coef, p0: f32(view(e.param, piece)), g0: f32(view(e.grad, piece)), ...(clip ? { scale: clip.scale } : {}) };
        slots.forEach((slot, j) => { feeds[`${slot}0`] = f32(view(moments[j]!, piece)); });
        // Each output goes over the input it replaces: the graph reads an element of it before writing that element.
        const into: Record<string, HostTensor> = { new_p0: feeds.p0! };
        slots.forEach((slot) => { into[`new_${slot}0`] = feeds[`${slot}0`]!; });
        if (clippedGrads) into.new_g0 = feeds.g0!;
        await exe.run(feeds, { into });
      }
      if (this.layout.counted) this.state.steps.set(e.name, (this.state.steps.get(e.name) ?? 0) + 1);
    }
    return clip ? { norm: clip.norm } : {};
  }

  /** The entries cut into pieces of at most `pieceElements`, in order. */
  private piecesOf(entries: readonly Entry[]): Piece[] {
    const size = this.device.pieceElements;
    return entries.flatMap((entry) => Array.from({ length: Math.ceil(entry.param.length / size) }, (_, k) => ({
      entry, start: k * size, end: Math.min((k + 1) * size, entry.param.length),
    })));
  }

  /** On a runner that holds outputs: bucket by bucket, the new moments held there. */
  private async applyInBuckets(entries: readonly Entry[], lr: number, maxNorm: number | null): Promise<{ norm?: number }> {
    const buckets = this.bucketsOf(entries);
    this.cache.reserve(2 * (buckets.length + 1));
    const clip: ClipMode = maxNorm === null ? 'none' : buckets.length === 1 ? 'norm' : 'scale';
    // Several buckets: the scale needs every gradient, so it is computed first and fed to each bucket as it came.
    const scaled = clip === 'scale' ? await this.clipScale(entries, maxNorm!) : undefined;
    let norm = scaled?.norm;
    for (const bucket of buckets) {
      const clipFeeds: Record<string, HostTensor> = clip === 'norm' ? { maxNorm: f32(Float32Array.of(maxNorm!)) } : scaled ? { scale: scaled.scale } : {};
      const out = await this.runBucket(bucket, lr, clip, clipFeeds);
      if (out.norm) norm = Number(out.norm.data[0]);
    }
    return norm === undefined ? {} : { norm };
  }

  /** Consecutive runs of tensors holding at most `bucketBytes` of parameters (a larger tensor alone). */
  private bucketsOf(entries: readonly Entry[]): Entry[][] {
    const buckets: Entry[][] = [];
    let bytes = Infinity;
    for (const e of entries) {
      if (bytes + e.param.byteLength > this.device.bucketBytes) {
        buckets.push([]);
        bytes = 0;
      }
      buckets.at(-1)!.push(e);
      bytes += e.param.byteLength;
    }
    return buckets;
  }

  private async runBucket(bucket: readonly Entry[], lr: number, clip: ClipMode, clipFeeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
    const lengths = bucket.map((e) => e.param.length);
    const decayed = bucket.map((e) => e.weightDecay !== 0);
    const clippedGrads = this.device.clippedGrads && clip !== 'none';
    const slots = momentSlots(this.rule);
    // Held moments belong to one bucket's session: its key names the tensors, so no other bucket shares it.
    const key = `update|${clip}|${clippedGrads}|${lengths.join(',')}|${decayed.map(Number).join('')}|${bucket.map((e) => e.name).join(',')}`;
    const feedback = Object.fromEntries(bucket.flatMap((_, i) => slots.map((slot) => [`new_${slot}${i}`, `${slot}${i}`])));
    const exe = await this.cache.get(key, () => updateGraph({ rule: this.rule, lengths, decayed, clip, clippedGrads }), feedback);
    const feeds: Record<string, HostTensor> = { ...clipFeeds, coef: f32(this.coefficients(bucket, lr)) };
    for (const [i, e] of bucket.entries()) {
      feeds[`p${i}`] = f32(e.param);
      feeds[`g${i}`] = f32(e.grad);
      const held = this.heldIn.get(e.name);
      if (held && held.key === key && held.index === i) continue; // the session feeds its own moments
      // Held by another bucket's session (the buckets changed): brought back, then fed here.
      await this.reclaim((name) => name === e.name);
      // A tensor's first update starts from zeros (SGD's first step ignores them: keep = 0).
      slots.forEach((slot, j) => { feeds[`${slot}${i}`] = f32(this.state.arrays[j]!.get(e.name) ?? new Float32Array(e.param.length)); });
    }
    const out = await exe.run(feeds);
    const result = (name: string) => out[name]!.data as Float32Array;
    bucket.forEach((e, i) => {
      copyAndFree(result(`new_p${i}`), e.param);
      this.heldIn.set(e.name, { key, index: i, length: e.param.length, synced: false });
      if (this.layout.counted) this.state.steps.set(e.name, (this.state.steps.get(e.name) ?? 0) + 1);
      if (clippedGrads) copyAndFree(result(`new_g${i}`), e.grad);
    });
    return out;
  }

  /** The per-tensor scalars of COEFFICIENTS, in float64 like the reference, rounded to float32 when fed. */
  private coefficients(bucket: readonly Entry[], lr: number): Float32Array {
    const k = COEFFICIENTS[this.rule.kind].length;
    const coef = new Float32Array(bucket.length * k);
    bucket.forEach((e, i) => {
      let values: number[];
      if (this.rule.kind === 'adamw') {
        const t = (this.state.steps.get(e.name) ?? 0) + 1;
        values = [1 - lr * e.weightDecay, lr / (1 - this.rule.beta1 ** t), 1 / Math.sqrt(1 - this.rule.beta2 ** t)];
      } else {
        const first = !this.hasState(e.name);
        values = [lr, e.weightDecay, first ? 0 : this.rule.momentum, first ? 1 : 1 - this.rule.dampening];
      }
      coef.set(values, i * k);
    });
    return coef;
  }
}
