import type { Tensor } from '../ir/graph.ts';
import * as op from '../ops/api.ts';

/** RMSNorm as in Llama: x / sqrt(mean(x^2) + eps) * weight.  x: [..., C], weight: [C] */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  return op.rmsNorm(x, weight, eps);
}

/** LayerNorm over the last axis with optional affine weight and bias.  x: [..., C] */
export function layerNorm(x: Tensor, weight: Tensor | undefined, bias: Tensor | undefined, eps: number): Tensor {
  const centered = op.sub(x, op.mean(x, -1, true));
  const variance = op.mean(op.mul(centered, centered), -1, true);
  let y = op.mul(centered, op.rsqrt(op.add(variance, eps)));
  if (weight) y = op.mul(y, weight);
  if (bias) y = op.add(y, bias);
  return y;
}
