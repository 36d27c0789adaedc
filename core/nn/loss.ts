import type { Tensor } from '../ir/graph.ts';
import * as op from '../ops/api.ts';

export const IGNORE_INDEX = -100;

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  /** 'mean' over non-ignored positions (default), 'sum', or 'none' (per position, 0 where ignored). */
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy of integer labels under logits.  logits: [..., V], labels: [...] int -> scalar (or [...] for 'none').
 * nll = logsumexp(logits) - logits[label]. The label's logit is picked with take_along_axis, so no one-hot or
 * log-softmax copy of the logits is formed; the only [..., V] temporaries are the shifted exponentials.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const ignore = opts.ignoreIndex ?? IGNORE_INDEX;
  // Labels compared in int32: onnxruntime-web's WebGPU provider runs int64 comparisons on the CPU, and two such
  // results copied to the GPU in one run both came back as the first one's (the loss was 0; docs/runners.md).
  if (labels.dtype === 'int64') labels = op.cast(labels, 'int32');
  const valid = op.greaterEqual(labels, op.scalar(labels, 0)); // [...]
  const isIgnored = op.equal(labels, op.scalar(labels, ignore));
  const safeLabels = op.where(valid, labels, op.scalar(labels, 0)); // ignored -> class 0, masked out below
  // The label's logit and the max are read first, so the shift below is the logits' last use and they can be
  // freed as soon as the shifted copy exists: two [..., V] buffers at most, not three.
  const picked = op.reshape(op.takeAlongAxis(logits, op.reshape(safeLabels, [...labels.shape, 1]), -1), labels.shape);
  const m = op.stopGradient(op.max(logits, -1, true)); // [..., 1]
  const sumExp = op.sum(op.exp(op.sub(logits, m)), -1); // [...]
  const lse = op.add(op.log(sumExp), op.reshape(m, labels.shape)); // [...]
  // 1 where the position counts: a class id (>= 0) that is not the ignore index.
  const weight = op.mul(op.cast(valid, logits.dtype), op.sub(1, op.cast(isIgnored, logits.dtype)));
  const nll = op.mul(op.sub(lse, picked), weight); // [...]
  if (opts.reduction === 'none') return nll;
  const total = op.sum(nll);
  if (opts.reduction === 'sum') return total;
  return op.div(total, op.maximum(op.sum(weight), 1));
}
