/**
 * The AdaLoRA layer (PEFT's SVDLinear): h = W x + b + (B ((A ⊙ E) x)) · alpha / (ranknum + 1e-5), with A [r, in]
 * the right singular vectors, E [r, 1] the singular values and B [out, r] the left ones. ranknum is the initial rank
 * init_r for every module, also after pruning, so the scale of a kept triplet never changes.
 */
import { nn, op, type Tensor } from '../../core/index.ts';

// PEFT's ParameterDict entries: no `.weight` suffix.
export const loraAName = (module: string): string => `${module}.lora_A`;
export const loraEName = (module: string): string => `${module}.lora_E`;
export const loraBName = (module: string): string => `${module}.lora_B`;
/** Not LoRA's mask name: both plugins may adapt the same module. */
export const dropoutMaskName = (module: string): string => `${module}.adalora_dropout_mask`;

/** The module a tensor name of this plugin belongs to, or undefined. */
export function moduleOf(name: string): string | undefined {
  const m = /^(.*)\.lora_[AEB]$/.exec(name);
  return m?.[1];
}

/** alpha / (ranknum + 1e-5), ranknum = init_r; the sum is taken in float32 as PEFT's ranknum parameter is. */
export function adaloraScaling(alpha: number, initR: number): number {
  return alpha / Math.fround(initR + 1e-5);
}

/** scaling · B ((A ⊙ E) x) for x [..., in]; a [r, in], e [r, 1], b [out, r] -> [..., out]. */
export function svdUpdate(x: Tensor, a: Tensor, e: Tensor, b: Tensor, scaling: number): Tensor {
  const ae = op.mul(a, e); // [r, in]: row i scaled by λ_i
  return op.mul(nn.linear(nn.linear(x, ae), b), scaling); // [..., r] -> [..., out]
}

/** ‖M − I‖_F for a square [r, r] matrix, as sqrt of the sum of squares. */
function frobeniusFromIdentity(m: Tensor, r: number): Tensor {
  const eye = new Float32Array(r * r);
  for (let i = 0; i < r; i++) eye[i * r + i] = 1;
  return op.sqrt(op.sum(op.square(op.sub(m, op.constant(m, eye, [r, r])))));
}

/**
 * The orthogonality regulariser: the mean over every A and B matrix of ‖AAᵀ − I‖_F (A [r, in]) and ‖BᵀB − I‖_F
 * (B [out, r]); a scalar. Keeps P and Q near-orthogonal so E acts as singular values and masking one is meaningful.
 */
export function orthogonalityPenalty(pairs: readonly { a: Tensor; b: Tensor; r: number }[]): Tensor {
  const terms: Tensor[] = [];
  for (const { a, b, r } of pairs) {
    terms.push(frobeniusFromIdentity(op.matmul(a, a, { tb: true }), r)); // A Aᵀ [r, r]
    terms.push(frobeniusFromIdentity(op.matmul(b, b, { ta: true }), r)); // Bᵀ B [r, r]
  }
  const total = terms.reduce((s, t) => op.add(s, t));
  return op.mul(total, 1 / terms.length);
}
