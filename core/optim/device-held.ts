/**
 * The device optimizer's path on a runner that holds outputs (the sidecar, WebGPU): tensors updated in buckets of
 * about `bucketBytes` of parameters, one graph each, loaded with its new moments fed back, so the moments stay on
 * the runner between updates. `sync` reads them back (before a checkpoint); until then the host's are stale.
 */
import type { HostTensor } from '../ir/host.ts';
import { momentSlots, updateGraph, type ClipMode } from './device-graph.ts';
import { f32, type Entry, type UpdateEnv } from './device-update.ts';

/**
 * Copies a graph output into the array it replaces and frees the output's memory at once (detaching its buffer):
 * left to the collector, a bucket's outputs of every step would pile up as garbage the size of the whole state.
 */
function copyAndFree(from: Float32Array, into: Float32Array): void {
  into.set(from);
  const buffer = from.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer };
  if (typeof buffer.transfer === 'function' && from.byteOffset === 0 && from.byteLength === buffer.byteLength) buffer.transfer(0);
}

/** Where a tensor's moments are held: the bucket graph's cache key and its position there. */
interface Held { key: string; index: number; length: number; synced: boolean }

export class HeldBuckets {
  /** By tensor name. Until `sync` reads them back (`synced`), the host arrays of such a tensor are stale. */
  private readonly held = new Map<string, Held>();

  constructor(private readonly env: UpdateEnv, private readonly bucketBytes: number, private readonly who: string) {}

  has(name: string): boolean {
    return this.held.has(name);
  }

  /** Element counts of the tensors whose moments are held. */
  lengths(): ReadonlyMap<string, number> {
    return new Map([...this.held].map(([name, h]) => [name, h.length]));
  }

  /** How many tensors have moments newer there than here. */
  stale(): number {
    return [...this.held.values()].filter((h) => !h.synced).length;
  }

  /** Forgets where a tensor's moments are (a fed copy replaces the session's if it trains again). */
  forget(name: string): void {
    this.held.delete(name);
  }

  /** Forgets every held copy: the next update feeds the host's (a loaded state, or after a release). */
  clear(): void {
    this.held.clear();
  }

  /** Reads the held moments back into the host state; the sessions keep their copies for the next update. */
  async sync(): Promise<void> {
    const slots = momentSlots(this.env.rule), state = this.env.state();
    for (const [name, h] of this.held) {
      if (h.synced) continue;
      const exe = await this.env.cache.peek(h.key)!;
      for (const [j, slot] of slots.entries()) {
        const t = await exe.readHeld!(`${slot}${h.index}`);
        if (t.data.length !== h.length) throw new Error(`${this.who}: held '${slot}${h.index}' of '${name}' has ${t.data.length} elements, expected ${h.length}`);
        const own = state.arrays[j]!, current = own.get(name);
        if (current) current.set(t.data as Float32Array);
        else own.set(name, Float32Array.from(t.data as Float32Array));
      }
      h.synced = true;
    }
  }

  /** Moves the moments of the tensors `which` picks back to the host for good (their session changes or goes). */
  async reclaim(which: (name: string, key: string) => boolean): Promise<void> {
    if (![...this.held].some(([name, h]) => which(name, h.key))) return;
    await this.sync();
    for (const [name, h] of this.held) if (which(name, h.key)) this.held.delete(name);
  }

  async apply(entries: readonly Entry[], lr: number, maxNorm: number | null): Promise<{ norm?: number }> {
    const buckets = this.bucketsOf(entries);
    this.env.cache.reserve(2 * (buckets.length + 1));
    const clip: ClipMode = maxNorm === null ? 'none' : buckets.length === 1 ? 'norm' : 'scale';
    // Several buckets: the scale needs every gradient, so it is computed first and fed to each bucket as it came.
    const scaled = clip === 'scale' ? await this.env.clipScale(entries.map((e) => e.grad), maxNorm!) : undefined;
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
      if (bytes + e.param.byteLength > this.bucketBytes) {
        buckets.push([]);
        bytes = 0;
      }
      buckets.at(-1)!.push(e);
      bytes += e.param.byteLength;
    }
    return buckets;
  }

  private async runBucket(bucket: readonly Entry[], lr: number, clip: ClipMode, clipFeeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
    const { env } = this;
    const lengths = bucket.map((e) => e.param.length);
    const decayed = bucket.map((e) => e.weightDecay !== 0);
    const clippedGrads = env.clippedGrads && clip !== 'none';
    const slots = momentSlots(env.rule);
    // Held moments belong to one bucket's session: its key names the tensors, so no other bucket shares it.
    const key = `update|${clip}|${clippedGrads}|${lengths.join(',')}|${decayed.map(Number).join('')}|${bucket.map((e) => e.name).join(',')}`;
    const feedback = Object.fromEntries(bucket.flatMap((_, i) => slots.map((slot) => [`new_${slot}${i}`, `${slot}${i}`])));
    const exe = await env.cache.get(key, () => updateGraph({ rule: env.rule, lengths, decayed, clip, clippedGrads }), feedback);
    const feeds: Record<string, HostTensor> = { ...clipFeeds, coef: f32(env.coefficients(bucket, lr)) };
    for (const [i, e] of bucket.entries()) {
      feeds[`p${i}`] = f32(e.param);
      feeds[`g${i}`] = f32(e.grad);
      const h = this.held.get(e.name);
      if (h && h.key === key && h.index === i) continue; // the session feeds its own moments
      // Held by another bucket's session (the buckets changed): brought back, then fed here.
      await this.reclaim((name) => name === e.name);
      // A tensor's first update starts from zeros (SGD's first step ignores them: keep = 0).
      slots.forEach((slot, j) => { feeds[`${slot}${i}`] = f32(env.state().arrays[j]!.get(e.name) ?? new Float32Array(e.param.length)); });
    }
    const out = await exe.run(feeds);
    const result = (name: string) => out[name]!.data as Float32Array;
    const state = env.state();
    bucket.forEach((e, i) => {
      copyAndFree(result(`new_p${i}`), e.param);
      this.held.set(e.name, { key, index: i, length: e.param.length, synced: false });
      if (env.counted) state.steps.set(e.name, (state.steps.get(e.name) ?? 0) + 1);
      if (clippedGrads) copyAndFree(result(`new_g${i}`), e.grad);
    });
    return out;
  }
}
