/** Train/eval split: a seeded random choice of held-out items; both parts keep the original order. */
import { SplitOptionsSchema, parseOptions } from './options.ts';
import type { SplitOptions } from './options.ts';
import { mixSeed, mulberry32, permutation } from './rng.ts';

/** Salt so the split's randomness differs from batch shuffling with the same seed. */
const SPLIT_SALT = 0x53504c54;

/**
 * Splits items into train and eval parts. `evalFraction` is rounded to a count, and kept between 1 and n-1 when
 * n ≥ 2 so neither part is empty; `evalCount` is taken as given (at most n).
 */
export function splitDataset<T>(items: readonly T[], options: SplitOptions): { train: T[]; eval: T[] } {
  const held = heldOutIndices(items.length, options);
  const train: T[] = [];
  const evalPart: T[] = [];
  items.forEach((x, i) => (held.has(i) ? evalPart : train).push(x));
  return { train, eval: evalPart };
}

/** The indices {@link splitDataset} holds out of `n` items (so a caller can treat them differently before splitting). */
export function heldOutIndices(n: number, options: SplitOptions): Set<number> {
  const o = parseOptions(SplitOptionsSchema, options, 'splitDataset');
  let count: number;
  if (o.evalCount !== undefined) {
    if (o.evalCount > n) throw new RangeError(`splitDataset: evalCount ${o.evalCount} exceeds the ${n} items`);
    count = o.evalCount;
  } else {
    count = Math.round(n * (o.evalFraction as number));
    if (n >= 2) count = Math.min(n - 1, Math.max(1, count));
  }
  return new Set(permutation(n, mulberry32(mixSeed(o.seed, SPLIT_SALT))).slice(0, count));
}
