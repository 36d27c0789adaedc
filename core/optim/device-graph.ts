/**
 * The optimizer update as a graph of our IR, so it runs on a runner like any compiled step instead of as JavaScript
 * loops over every parameter. One graph updates a set ("bucket") of tensors, each seen as a flat vector:
 *
 *   inputs   p<i>, g<i> (float32[n_i]); the moments of the rule (AdamW m<i>, v<i>; SGD with momentum buf<i>);
 *            coef (float32[N·K]): K per-tensor scalars computed on the host in float64 (see COEFFICIENTS);
 *            clipping: maxNorm (float32[1]) to compute the global norm here, or scale (float32[1]) already computed
 *   outputs  new_p<i> and the new moments (new_m<i>, new_v<i> / new_buf<i>); with maxNorm also norm (float32[]) and
 *            scale (float32[1]); optionally new_g<i>, the gradients after clipping
 *
 * The arithmetic is the one of adamw.ts, sgd.ts and clip.ts, operation by operation in the same order, in float32
 * (the JavaScript reference evaluates each element in float64 and rounds once when storing, so the two agree to
 * float32 rounding, not bit for bit). Whether a tensor is decayed is part of the graph (its policy does not change
 * during a run), so undecayed tensors skip the decay's passes over memory.
 */
import { trace, type Graph, type Tensor } from '../ir/graph.ts';
import * as op from '../ops/api.ts';

/** The update rule with its fixed hyperparameters (baked into the graph as constants). */
export type UpdateRule =
  | { readonly kind: 'adamw'; readonly beta1: number; readonly beta2: number; readonly eps: number }
  | { readonly kind: 'sgd'; readonly momentum: number; readonly dampening: number; readonly nesterov: boolean };

/**
 * The per-tensor scalars in `coef`, in order (tensor i's are at i·K .. i·K+K-1). They change every step (learning
 * rate, each tensor's own step count), so they are fed rather than baked:
 *   AdamW  decay = 1 - lr·wd, stepSize = lr / (1 - beta1^t), invBc2Sqrt = 1 / sqrt(1 - beta2^t)
 *   SGD    lr, wd, keep (0 on the first step, else momentum), add (1 on the first step, else 1 - dampening)
 */
export const COEFFICIENTS = {
  adamw: ['decay', 'stepSize', 'invBc2Sqrt'],
  sgd: ['lr', 'weightDecay', 'keep', 'add'],
} as const;

/** Moment slots of a rule, in feed order (the graph's input names are `<slot><i>`). */
export function momentSlots(rule: UpdateRule): readonly string[] {
  if (rule.kind === 'adamw') return ['m', 'v'];
  return rule.momentum === 0 ? [] : ['buf'];
}

/** How a graph clips: not at all; by the global norm of its own gradients; by a scale computed by `normGraph`. */
export type ClipMode = 'none' | 'norm' | 'scale';

export interface UpdateGraphSpec {
  readonly rule: UpdateRule;
  /** Element count of each tensor, in feed order. */
  readonly lengths: readonly number[];
  /** Whether each tensor gets weight decay (its coefficient is ignored otherwise). */
  readonly decayed: readonly boolean[];
  readonly clip: ClipMode;
  /** Also output the clipped gradients (`new_g<i>`), for callers that must see what the update used. */
  readonly clippedGrads?: boolean;
}

/** torch.nn.utils.clip_grad_norm_'s epsilon (clip.ts). */
const CLIP_EPS = 1e-6;

/** Terms per partial sum: few enough that a float32 sum of them keeps ~7 digits. */
const ROW = 256;

/**
 * The partial sums of g^2 of one gradient ([parts] float32): rows of ROW elements, and the tail. One float32 sum over
 * millions of positive terms drifts (measured: 5e-4 relative on SmolLM2-135M's embedding); sums of ROW terms do not.
 */
function squareSums(g: Tensor): Tensor[] {
  const n = g.shape[0] as number, rows = Math.floor(n / ROW);
  const parts: Tensor[] = [];
  if (rows > 0) parts.push(op.sum(op.square(op.reshape(op.slice(g, 0, 0, rows * ROW), [rows, ROW])), 1)); // [rows]
  if (rows * ROW < n) parts.push(op.sum(op.square(op.slice(g, 0, rows * ROW, n)), 0, true)); // [1]
  return parts;
}

/**
 * Sum of a float32 vector in float32, as a tree of fan-out ROW: each level adds ROW terms at a time, so no sum adds
 * more than ROW terms and the rounding of each level averages out in the next. All in float32, so every node runs
 * on a GPU (WebGPU has no float64; a float64 sum put the norm's nodes on the CPU, with a copy back and forth each).
 */
function treeSum(x: Tensor): Tensor {
  let v = x; // [n]
  for (let n = v.shape[0] as number; n > ROW; n = v.shape[0] as number) {
    const rows = Math.ceil(n / ROW);
    v = op.sum(op.reshape(rows * ROW === n ? v : op.pad(v, 0, 0, rows * ROW - n), [rows, ROW]), 1); // [rows]
  }
  return op.sum(v); // []
}

/**
 * norm = sqrt(sum of g^2 over every gradient) (rank 0) and scale = min(1, maxNorm / (norm + 1e-6)) (shape [1]), in
 * float32 with the sum as a tree (clip.ts accumulates in float64; measured within 1e-7 of it). The min is written so
 * that a NaN norm gives a NaN scale, as Math.min does.
 */
export function clipScale(grads: readonly Tensor[], maxNorm: Tensor): { norm: Tensor; scale: Tensor } {
  const parts = grads.flatMap(squareSums);
  const norm = op.sqrt(treeSum(parts.length === 1 ? parts[0]! : op.concat(parts, 0))); // []
  const ratio = op.div(maxNorm, op.add(norm, CLIP_EPS)); // [1]
  const scale = op.where(op.less(1, ratio), op.scalar(ratio, 1), ratio); // [1]
  return { norm, scale };
}

/** A graph computing only the global norm and the clip scale of a set of gradients (inputs g<i>, maxNorm). */
export function normGraph(lengths: readonly number[]): Graph {
  return trace((b) => {
    const grads = lengths.map((n, i) => b.input(`g${i}`, 'float32', [n]));
    return clipScale(grads, b.input('maxNorm', 'float32', [1]));
  });
}

/** The update graph of one set of tensors (see the file comment for its inputs and outputs). */
export function updateGraph(spec: UpdateGraphSpec): Graph {
  const { rule, lengths, decayed } = spec;
  if (decayed.length !== lengths.length) throw new Error(`updateGraph: ${lengths.length} tensors but ${decayed.length} decay flags`);
  const k = COEFFICIENTS[rule.kind].length;
  return trace((b) => {
    const coef = b.input('coef', 'float32', [lengths.length * k]);
    const grads = lengths.map((n, i) => b.input(`g${i}`, 'float32', [n]));
    const out: Record<string, Tensor> = {};
    let scale: Tensor | undefined;
    if (spec.clip === 'norm') {
      const clipped = clipScale(grads, b.input('maxNorm', 'float32', [1]));
      Object.assign(out, clipped);
      scale = clipped.scale;
    } else if (spec.clip === 'scale') scale = b.input('scale', 'float32', [1]);
    lengths.forEach((n, i) => {
      const p = b.input(`p${i}`, 'float32', [n]);
      const moments = momentSlots(rule).map((slot) => b.input(`${slot}${i}`, 'float32', [n]));
      const c = (j: number) => op.slice(coef, 0, i * k + j, i * k + j + 1); // [1]
      const g = scale ? op.mul(grads[i]!, scale) : grads[i]!; // [n]
      if (spec.clippedGrads && scale) out[`new_g${i}`] = g;
      const next = rule.kind === 'adamw'
        ? adamwUpdate(rule, p, g, moments[0]!, moments[1]!, decayed[i] ? c(0) : undefined, c(1), c(2))
        : sgdUpdate(rule, p, g, moments[0], c(0), decayed[i] ? c(1) : undefined, c(2), c(3));
      out[`new_p${i}`] = next.p;
      momentSlots(rule).forEach((slot, j) => { out[`new_${slot}${i}`] = next.moments[j]!; });
    });
    return out;
  });
}

export interface Updated { p: Tensor; moments: Tensor[] }

/** adamw.ts's update of one tensor: every tensor [n], coefficients [1]. */
export function adamwUpdate(
  rule: Extract<UpdateRule, { kind: 'adamw' }>, p: Tensor, g: Tensor, m: Tensor, v: Tensor,
  decay: Tensor | undefined, stepSize: Tensor, invBc2Sqrt: Tensor,
): Updated {
  const mNext = op.add(m, op.mul(op.sub(g, m), 1 - rule.beta1)); // m.lerp(g, 1 - beta1)
  const vNext = op.add(op.mul(v, rule.beta2), op.mul(op.mul(g, 1 - rule.beta2), g));
  const denom = op.add(op.mul(op.sqrt(vNext), invBc2Sqrt), rule.eps);
  const decayed = decay ? op.mul(p, decay) : p;
  return { p: op.sub(decayed, op.div(op.mul(mNext, stepSize), denom)), moments: [mNext, vNext] };
}

/** sgd.ts's update of one tensor: every tensor [n], coefficients [1]; `buf` absent without momentum. */
export function sgdUpdate(
  rule: Extract<UpdateRule, { kind: 'sgd' }>, p: Tensor, g: Tensor, buf: Tensor | undefined,
  lr: Tensor, wd: Tensor | undefined, keep: Tensor, add: Tensor,
): Updated {
  const d = wd ? op.add(g, op.mul(p, wd)) : g; // coupled (L2) weight decay
  if (!buf) return { p: op.sub(p, op.mul(d, lr)), moments: [] };
  const bufNext = op.add(op.mul(buf, keep), op.mul(d, add));
  const direction = rule.nesterov ? op.add(d, op.mul(bufNext, rule.momentum)) : bufNext;
  return { p: op.sub(p, op.mul(direction, lr)), moments: [bufNext] };
}
