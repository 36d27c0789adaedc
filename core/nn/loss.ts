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
  const { safe, weight } = labelTables(logits, ignore);
  // Looked up, not computed: labels are only ever used as indices, which every onnxruntime provider takes in int64.
  // (onnxruntime-web's WebGPU provider has no int64 Cast or comparison kernel; int64 comparisons it ran on the CPU
  // returned a 0 loss when two were copied to the GPU in one run: docs/runners.md.)
  const safeLabels = op.gather(safe, labels); // [...] int32: ignored -> class 0, masked out below
  const w = op.gather(weight, labels); // [...]: 1 where the position counts
  // The label's logit and the max are read first, so the shift below is the logits' last use and they can be
  // freed as soon as the shifted copy exists: two [..., V] buffers at most, not three.
  const picked = op.reshape(op.takeAlongAxis(logits, op.reshape(safeLabels, [...labels.shape, 1]), -1), labels.shape);
  const m = op.stopGradient(op.max(logits, -1, true)); // [..., 1]
  const sumExp = op.sum(op.exp(op.sub(logits, m)), -1); // [...]
  const lse = op.add(op.log(sumExp), op.reshape(m, labels.shape)); // [...]
  const nll = op.mul(op.sub(lse, picked), w); // [...]
  if (opts.reduction === 'none') return nll;
  const total = op.sum(nll);
  if (opts.reduction === 'sum') return total;
  return op.div(total, op.maximum(op.sum(w), 1));
}

/**
 * Per label value, the class it picks (itself, or 0 for a negative or ignored label, whose term is masked out) and
 * its weight (1 for a class id that is not the ignore index), over every label from min(0, ignore) up to
 * max(V, ignore + 1): entry j holds label j below that top and label j - size above it, where Gather reads a
 * negative label. A label outside that range is an error (Gather's bounds check), as in PyTorch. Built from iota,
 * so onnxruntime folds the tables into constants when the session is created.
 */
function labelTables(logits: Tensor, ignore: number): { safe: Tensor; weight: Tensor } {
  const V = logits.shape[logits.rank - 1];
  if (typeof V !== 'number') throw new Error(`crossEntropy: the class dim of logits must be concrete, got '${V}'`);
  const top = Math.max(V, ignore + 1), size = top - Math.min(0, ignore);
  const j = op.iota(logits, [size], 0, 'int32'); // [size]
  const label = op.where(op.less(j, top), j, op.sub(j, size)); // [size]: the label value entry j stands for
  const isClass = op.greaterEqual(label, 0);
  const safe = op.where(isClass, label, 0);
  const weight = op.mul(op.cast(isClass, logits.dtype), op.sub(1, op.cast(op.equal(label, ignore), logits.dtype)));
  return { safe, weight };
}
