/** Rotary position embeddings in the Hugging Face "rotate half" layout. */
import type { Tensor } from '../ir/graph.ts';
import * as op from '../ops/api.ts';

/** inv_freq[i] = theta^(-2i / headDim), i < headDim / 2. Scaling variants adjust this vector (see models). */
export function ropeInvFreq(headDim: number, theta: number): Float64Array {
  const half = headDim / 2;
  return Float64Array.from({ length: half }, (_, i) => theta ** (-(2 * i) / headDim));
}

/**
 * cos and sin tables for integer positions.  positions: [..., T] int -> cos, sin: [..., T, headDim]
 * The angle for dim j is position * invFreq[j mod headDim/2] (the two halves repeat).
 */
export function ropeTables(positions: Tensor, invFreq: Float64Array, dtype: Tensor['dtype'] = 'float32'): { cos: Tensor; sin: Tensor } {
  const half = invFreq.length;
  const freqData = new (dtype === 'float64' ? Float64Array : Float32Array)(2 * half);
  freqData.set(invFreq);
  freqData.set(invFreq, half);
  const freqs = op.constant(positions, freqData, [2 * half], dtype); // [D]
  const pos = op.reshape(op.cast(positions, dtype), [...positions.shape, 1]); // [..., T, 1]
  const angles = op.mul(pos, freqs); // [..., T, D]
  return { cos: op.cos(angles), sin: op.sin(angles) };
}

/** [x1, x2] -> [-x2, x1] over the last axis. */
export function rotateHalf(x: Tensor): Tensor {
  const d = x.shape.at(-1) as number;
  const x1 = op.slice(x, -1, 0, d / 2);
  const x2 = op.slice(x, -1, d / 2, d);
  return op.concat([op.neg(x2), x1], -1);
}

/** x * cos + rotateHalf(x) * sin.  x: [B, H, T, D]; cos, sin broadcastable to it (e.g. [B, 1, T, D]). */
export function applyRope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return op.add(op.mul(x, cos), op.mul(rotateHalf(x), sin));
}
