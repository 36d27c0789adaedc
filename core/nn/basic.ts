/** Layers built only from primitives: linear, embedding, activations, softmax. */
import type { Tensor } from '../ir/graph.ts';
import * as op from '../ops/api.ts';

/** y = x W^T + b, with W in the Hugging Face / PyTorch layout [out, in].  x: [..., in] -> [..., out] */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = op.matmul(x, weight, { tb: true }); // W stays [out, in]: no transposed copy
  return bias ? op.add(y, bias) : y;
}

/** Rows of `table` [V, C] for integer ids [...] -> [..., C]. */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  return op.gather(table, ids);
}

export function silu(x: Tensor): Tensor {
  return op.silu(x);
}

/** GELU; exact (erf) by default, or the tanh approximation ("gelu_pytorch_tanh"). */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  if (approximate === 'tanh') {
    const inner = op.mul(Math.sqrt(2 / Math.PI), op.add(x, op.mul(0.044715, op.mul(x, op.mul(x, x)))));
    return op.mul(op.mul(0.5, x), op.add(1, op.tanh(inner)));
  }
  return op.mul(op.mul(0.5, x), op.add(1, op.erf(op.mul(x, Math.SQRT1_2))));
}

/** Softmax along `axis` (numerically stable in onnxruntime's kernel; a primitive so backward keeps only p). */
export function softmax(x: Tensor, axis = -1): Tensor {
  return op.softmax(x, axis);
}

/** log(softmax(x)) computed as x - logsumexp(x), without forming the probabilities. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return op.sub(x, logSumExp(x, axis, true));
}

export function logSumExp(x: Tensor, axis = -1, keepdims = false): Tensor {
  const m = op.stopGradient(op.max(x, axis, true));
  const s = op.log(op.sum(op.exp(op.sub(x, m)), axis, true));
  const out = op.add(s, m);
  return keepdims ? out : op.reshape(out, out.shape.filter((_, i) => i !== (axis < 0 ? axis + x.rank : axis)));
}
