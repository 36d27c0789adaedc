/**
 * The layer sampler: a random stream whose position can be saved, importance probabilities from per-layer
 * statistics, and drawing γ distinct layers.
 */
import { seededRandom } from '../../core/index.ts';

/**
 * The sampler's random stream with its position in the open: the run's seed and how many numbers were drawn. A
 * checkpoint stores both, and a resumed run replays the stream to the same position (a few numbers per switch), so
 * it draws the same layers as an uninterrupted one.
 */
export class SamplerStream {
  private readonly random: () => number;
  private used = 0;

  constructor(readonly seed: number, position = 0) {
    this.random = seededRandom(seed);
    while (this.used < position) this.next();
  }

  /** Numbers drawn so far. */
  get position(): number {
    return this.used;
  }

  /** A uniform draw in [0, 1). */
  next(): number {
    this.used++;
    return this.random();
  }
}

/** The sampler's seed for a run: the run seed mixed with a constant, so it is not the stream of any other plugin. */
export function samplerSeed(runSeed: number): number {
  return (Math.imul(runSeed >>> 0, 0x9e3779b9) ^ 0x4c495341) >>> 0; // 'LISA'
}

export interface ImportanceOptions {
  /** p ∝ statistic^(1 / temperature). */
  temperature: number;
  /** Share of the probability spread uniformly. */
  explore: number;
}

/**
 * Sampling probabilities from one non-negative statistic per candidate layer: p_l ∝ s_l^(1/τ), mixed with the
 * uniform distribution, p = (1 − explore)·p + explore / n. The power form does not depend on the statistic's units.
 * Statistics that are all zero or missing give the uniform distribution; `undefined` entries (never measured) take
 * the largest measured value, so unmeasured layers are tried early rather than starved.
 */
export function importanceProbabilities(stats: readonly (number | undefined)[], { temperature, explore }: ImportanceOptions): number[] {
  const n = stats.length;
  const uniform = new Array<number>(n).fill(1 / n);
  const measured = stats.filter((s): s is number => s !== undefined && Number.isFinite(s) && s > 0);
  if (measured.length === 0) return uniform;
  const best = Math.max(...measured);
  // Work in logs: (s / best)^(1/τ) stays in [0, 1] even for tiny temperatures.
  const weights = stats.map((s) => {
    const v = s === undefined ? best : s;
    return Number.isFinite(v) && v > 0 ? Math.exp(Math.log(v / best) / temperature) : 0;
  });
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => (1 - explore) * (w / total) + explore / n);
}

/**
 * Draws `count` distinct indices, one at a time, each with probability proportional to its weight among those not
 * yet drawn (successive sampling without replacement). Returns them sorted.
 */
export function drawWithoutReplacement(probabilities: readonly number[], count: number, random: () => number): number[] {
  if (count > probabilities.length) throw new Error(`cannot draw ${count} distinct layers from ${probabilities.length}`);
  const left = probabilities.map((p, i) => ({ i, p: Math.max(0, p) }));
  const chosen: number[] = [];
  while (chosen.length < count) {
    const total = left.reduce((s, x) => s + x.p, 0);
    let pick = left.length - 1;
    if (total > 0) {
      let u = random() * total;
      pick = left.findIndex((x) => (u -= x.p) < 0);
      if (pick < 0) pick = left.findLastIndex((x) => x.p > 0); // rounding at the very end of the range
    } else {
      pick = Math.floor(random() * left.length); // only zero weights left: uniform among them
    }
    chosen.push(left[pick]!.i);
    left.splice(pick, 1);
  }
  return chosen.sort((a, b) => a - b);
}
