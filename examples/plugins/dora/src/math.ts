/**
 * DoRA's arithmetic on host tensors, for initialisation and merging (once per run, never per step): the row norms
 * of W + s·B·A, and the merged weight m / ‖W + s·B·A‖ ⊙ (W + s·B·A).
 */
import { hostTensor, type HostTensor } from 'tuneforge';

/** W + s · B A for W [out, in], B [out, r], A [r, in]. */
export function adapted(w: HostTensor, a: HostTensor, b: HostTensor, scaling: number): Float32Array {
  const [out, inp] = w.shape as [number, number];
  const r = a.shape[0]!;
  const W = w.data as Float32Array, A = a.data as Float32Array, B = b.data as Float32Array;
  const result = W.slice();
  for (let o = 0; o < out; o++) {
    for (let k = 0; k < r; k++) {
      const bk = scaling * B[o * r + k]!;
      if (bk === 0) continue;
      for (let i = 0; i < inp; i++) result[o * inp + i]! += bk * A[k * inp + i]!;
    }
  }
  return result;
}

/** Euclidean norm of each row of a row-major [rows, cols] matrix. */
export function rowNorms(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows);
  for (let o = 0; o < rows; o++) {
    let s = 0;
    for (let i = 0; i < cols; i++) s += values[o * cols + i]! ** 2;
    out[o] = Math.sqrt(s);
  }
  return out;
}

/** The merged weight: each row of W + s·B·A rescaled to the learned magnitude. */
export function mergedWeight(w: HostTensor, a: HostTensor, b: HostTensor, m: HostTensor, scaling: number): HostTensor {
  const [out, inp] = w.shape as [number, number];
  const v = adapted(w, a, b, scaling);
  const norms = rowNorms(v, out, inp);
  const mag = m.data as Float32Array;
  for (let o = 0; o < out; o++) {
    const k = mag[o]! / norms[o]!;
    for (let i = 0; i < inp; i++) v[o * inp + i]! *= k;
  }
  return hostTensor('float32', [out, inp], v);
}
