/**
 * Global-norm gradient clipping, like torch.nn.utils.clip_grad_norm_ (norm_type 2, error_if_nonfinite False):
 *
 *   norm  = sqrt(sum over all gradients of g^2)          (accumulated here in float64)
 *   scale = min(1, maxNorm / (norm + 1e-6))              (torch's clip_coef clamped to 1)
 *   g    *= scale                                        (in place; skipped when scale is exactly 1)
 *
 * So gradients are scaled by maxNorm / (norm + 1e-6) when norm > maxNorm. As in torch, a non-finite norm is not an
 * error: a NaN norm gives scale NaN and an infinite one scale 0; check `Number.isFinite(norm)` to skip such a step.
 */

/** Sum of squares of one array in float64, with four accumulators to keep the FP adds independent. */
export function sumOfSquares(g: Float32Array): number {
  const n = g.length, n4 = n - (n & 3);
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let i = 0;
  for (; i < n4; i += 4) {
    const a = g[i]!, b = g[i + 1]!, c = g[i + 2]!, d = g[i + 3]!;
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; i < n; i++) s0 += g[i]! * g[i]!;
  return s0 + s1 + s2 + s3;
}

/** L2 norm of all gradients taken together. */
export function globalNorm(grads: Iterable<Float32Array>): number {
  let s = 0;
  for (const g of grads) s += sumOfSquares(g);
  return Math.sqrt(s);
}

/** Scales every gradient in place so that their global L2 norm is at most `maxNorm`; returns the norm before. */
export function clipGradNorm(grads: Iterable<Float32Array>, maxNorm: number): { norm: number; scale: number } {
  if (!(maxNorm >= 0)) throw new Error(`clipGradNorm: maxNorm ${maxNorm} is not a number >= 0`);
  const list = Array.isArray(grads) ? (grads as Float32Array[]) : [...grads]; // may be a one-shot iterator
  const norm = globalNorm(list);
  const scale = Math.min(1, maxNorm / (norm + 1e-6));
  if (scale !== 1) {
    for (const g of list) {
      for (let i = 0, n = g.length; i < n; i++) g[i] = g[i]! * scale;
    }
  }
  return { norm, scale };
}
