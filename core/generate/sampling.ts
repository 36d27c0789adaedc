/** Choosing the next token from logits: greedy, or sampled with temperature, top-k and top-p (nucleus). */
import { z } from 'zod';
import { mulberry32 } from '../data/rng.ts';

export const decodingSchema = z.object({
  maxNewTokens: z.number().int().positive().default(128).describe('tokens to generate at most'),
  temperature: z.number().min(0).default(0).describe('0 = greedy; otherwise logits are divided by this before sampling'),
  topK: z.number().int().min(0).default(0).describe('sample among the k most likely tokens (0 = no limit)'),
  topP: z.number().gt(0).max(1).default(1).describe('sample among the smallest set of tokens whose probability reaches p'),
  seed: z.number().int().default(0).describe('random seed for sampling'),
  stopTokens: z.array(z.number().int()).default([]).describe('token ids that end generation (not included in the output)'),
});
export type DecodingOptions = z.input<typeof decodingSchema>;
export type Decoding = z.output<typeof decodingSchema>;

/** A seeded uniform generator (mulberry32), so sampled generations reproduce. */
export const seededRandom = mulberry32;

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** Picks a token id from one row of logits. */
export function pickToken(logits: ArrayLike<number>, d: Decoding, random: () => number): number {
  if (d.temperature === 0) return argmax(logits);
  let ids = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
  if (d.topK > 0) ids = ids.slice(0, d.topK);
  const top = logits[ids[0]!]!;
  let probs = ids.map((i) => Math.exp((logits[i]! - top) / d.temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (d.topP < 1) {
    let cumulative = 0, keep = 0;
    while (keep < probs.length && cumulative < d.topP * total) cumulative += probs[keep++]!;
    ids = ids.slice(0, keep);
    probs = probs.slice(0, keep);
    total = cumulative;
  }
  let u = random() * total;
  for (let k = 0; k < ids.length; k++) {
    u -= probs[k]!;
    if (u <= 0) return ids[k]!;
  }
  return ids[ids.length - 1]!;
}
