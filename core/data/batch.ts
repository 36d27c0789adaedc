/**
 * Batches: planning which examples go together (seeded shuffle, optional length bucketing) and collating them
 * into right-padded int64 tensors.
 */
import { hostTensor } from '../ir/host.ts';
import type { HostTensor } from '../ir/host.ts';
import { IGNORE_INDEX } from './example.ts';
import type { Example } from './example.ts';
import { BatchOptionsSchema, parseOptions } from './options.ts';
import type { BatchOptions, ResolvedBatchOptions } from './options.ts';
import { mixSeed, mulberry32, permutation, shuffleInPlace } from './rng.ts';

/** A collated batch. All tensors are int64 [B, T], right-padded. */
export interface Batch {
  /** Token ids; padded positions hold padId. */
  readonly inputIds: HostTensor;
  /** Unshifted labels (see example.ts); -100 on padding and untrained positions. */
  readonly labels: HostTensor;
  /** 1 on real tokens, 0 on padding. */
  readonly attentionMask: HostTensor;
  /** Real (non-pad) tokens in the batch. */
  readonly tokenCount: number;
  /** Positions that carry loss (label ≠ -100). */
  readonly lossTokenCount: number;
  /** Indices of the examples, in row order. */
  readonly indices: readonly number[];
}

/** The batch length T for examples whose longest has `longest` tokens. */
function batchLength(longest: number, o: Pick<ResolvedBatchOptions, 'padTo' | 'multipleOf'>): number {
  const base = o.padTo === 'longest' ? longest : o.padTo;
  if (longest > base) throw new RangeError(`an example has ${longest} tokens, more than padTo = ${base}; truncate it first`);
  return Math.ceil(Math.max(base, 1) / o.multipleOf) * o.multipleOf;
}

/**
 * Pads the examples at `indices` into a {@link Batch}. `rows` (at least `indices.length`) appends rows of padding
 * without loss, so that a short batch takes the shape of the full ones (and the same compiled session).
 */
export function collate(
  examples: readonly Example[],
  indices: readonly number[],
  o: Pick<ResolvedBatchOptions, 'padId' | 'padTo' | 'multipleOf'> & { rows?: number },
): Batch {
  const rows = indices.map((i) => {
    const ex = examples[i];
    if (ex === undefined) throw new RangeError(`no example ${i}`);
    if (ex.labels.length !== ex.inputIds.length) throw new Error(`example ${i}: inputIds and labels differ in length`);
    return ex;
  });
  const B = Math.max(rows.length, o.rows ?? 0);
  const T = batchLength(Math.max(0, ...rows.map((r) => r.inputIds.length)), o);
  const ids = new BigInt64Array(B * T).fill(BigInt(o.padId));
  const labels = new BigInt64Array(B * T).fill(BigInt(IGNORE_INDEX));
  const mask = new BigInt64Array(B * T);
  let tokenCount = 0;
  let lossTokenCount = 0;
  rows.forEach((r, b) => {
    for (let t = 0; t < r.inputIds.length; t++) {
      const label = r.labels[t] as number;
      ids[b * T + t] = BigInt(r.inputIds[t] as number);
      labels[b * T + t] = BigInt(label);
      mask[b * T + t] = 1n;
      if (label !== IGNORE_INDEX) lossTokenCount++;
    }
    tokenCount += r.inputIds.length;
  });
  return {
    inputIds: hostTensor('int64', [B, T], ids),
    labels: hostTensor('int64', [B, T], labels),
    attentionMask: hostTensor('int64', [B, T], mask),
    tokenCount,
    lossTokenCount,
    indices: [...indices],
  };
}

/**
 * The batches of one epoch as lists of example indices, a pure function of (lengths, options, epochSeed).
 * Without bucketing: a seeded permutation cut into batches. With bucketing: the permutation is cut into windows of
 * `bucketWindow` batches, each window is sorted by length (so batch-mates have similar lengths) and cut into
 * batches, and then the order of all batches is shuffled.
 */
export function planEpoch(lengths: readonly number[], o: ResolvedBatchOptions, epochSeed: number): number[][] {
  const rand = mulberry32(epochSeed);
  const n = lengths.length;
  const order = o.shuffle ? permutation(n, rand) : Array.from({ length: n }, (_, i) => i);
  const chunk = (xs: readonly number[]): number[][] => {
    const out: number[][] = [];
    for (let i = 0; i < xs.length; i += o.batchSize) out.push(xs.slice(i, i + o.batchSize));
    return out;
  };
  let batches: number[][];
  if (o.bucketByLength) {
    batches = [];
    const window = o.bucketWindow * o.batchSize;
    for (let w = 0; w < n; w += window) {
      const part = order.slice(w, w + window);
      part.sort((a, b) => (lengths[a] as number) - (lengths[b] as number) || a - b);
      batches.push(...chunk(part));
    }
    if (o.shuffle) shuffleInPlace(batches, rand);
  } else batches = chunk(order);
  return o.dropLast ? batches.filter((b) => b.length === o.batchSize) : batches;
}

/** The seed of epoch `epoch` of a run seeded with `seed`. */
export function epochSeed(seed: number, epoch: number): number {
  return mixSeed(seed, epoch);
}

/**
 * One epoch of padded batches (epoch 0 of {@link BatchStream} with the same options). Same seed, same batches,
 * on every run. All batches are collated at once; for large datasets prefer the lazy {@link BatchStream}.
 */
export function makeBatches(examples: readonly Example[], options: BatchOptions): Batch[] {
  const o = parseOptions(BatchOptionsSchema, options, 'makeBatches');
  const plan = planEpoch(examples.map((e) => e.inputIds.length), o, epochSeed(o.seed, 0));
  return plan.map((indices) => collate(examples, indices, o));
}

/** Share of padded positions over batches (printed by tests and benchmarks). */
export function padFraction(batches: readonly Batch[]): number {
  let cells = 0;
  let real = 0;
  for (const b of batches) {
    cells += b.inputIds.data.length;
    real += b.tokenCount;
  }
  return cells === 0 ? 0 : 1 - real / cells;
}
