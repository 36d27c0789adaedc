import type { Tensor } from '../ir/graph.ts';
import type { Dim } from '../ir/shape.ts';
import * as op from '../ops/api.ts';
import { softmax } from './basic.ts';

/** A large negative number used for masked scores (finite so fully masked rows stay NaN-free). */
export const MASKED = -1e9;

/**
 * Additive causal mask [T, S]: 0 where key s may be seen from query t (s <= t + offset), MASKED elsewhere.
 * `offset` is the number of cached positions before the T queries (S = offset + T).
 */
export function causalMask(like: Tensor, T: Dim, S: Dim, offset = 0): Tensor {
  const t = op.iota(like, [T, S], 0);
  const s = op.iota(like, [T, S], 1);
  const visible = op.lessEqual(s, offset === 0 ? t : op.add(t, op.scalar(t, offset)));
  return op.where(visible, op.scalar(like, 0), op.scalar(like, MASKED));
}

/**
 * Scaled dot-product attention with grouped-query heads, optionally soft-capping the scores (Gemma 2).
 *   q: [B, H, T, D]   k, v: [B, KV, S, D]   mask: additive, broadcastable to [B, H, T, S]   -> [B, H, T, D]
 * Query head h reads key/value head floor(h / (H / KV)), as Hugging Face's repeat_kv does. Keys and values are not
 * repeated in memory: the query heads of a group are folded into the row dimension of one matmul per KV head.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, mask?: Tensor, scale?: number, softcap?: number | null): Tensor {
  const [B, H, T, D] = q.shape as [Dim, number, Dim, number];
  const KV = k.shape[1] as number;
  const S = k.shape[2]!;
  if (H % KV !== 0) throw new Error(`attention: ${H} query heads are not a multiple of ${KV} key/value heads`);
  const G = H / KV;
  const qg = op.reshape(q, [B, KV, op.mulDims(G, T), D]); // [B, KV, G*T, D]
  let scores = op.matmul(qg, k, { tb: true }); // [B, KV, G*T, S]
  scores = op.mul(scores, scale ?? 1 / Math.sqrt(D));
  if (softcap) scores = softCap(scores, softcap); // Gemma 2: before the mask, so masked keys stay masked
  if (mask) {
    const grouped = op.reshape(scores, [B, KV, G, T, S]);
    const m = mask.rank === 4 ? op.reshape(mask, [mask.shape[0]!, 1, 1, T, S]) : mask; // [B|1, 1, 1, T, S] or [T, S]
    scores = op.reshape(op.add(grouped, m), [B, KV, op.mulDims(G, T), S]);
  }
  const probs = softmax(scores, -1);
  const out = op.matmul(probs, v); // [B, KV, G*T, D]
  return op.reshape(out, [B, H, T, D]);
}

/** c·tanh(x / c): bounds x to (−c, c) smoothly (Gemma 2's attention and final logit soft-capping). */
export function softCap(x: Tensor, cap: number): Tensor {
  return op.mul(op.tanh(op.mul(x, 1 / cap)), cap);
}
