/**
 * Mixture-of-experts MLP blocks (Mixtral, Qwen3-MoE): a linear router, softmax over all experts, the top-k kept
 * (renormalised per family), and the weighted sum of the chosen experts' gated MLPs.
 *
 * How experts are computed: densely. Every expert runs on every token and its output is multiplied by the token's
 * routing weight, which is exactly 0 for experts outside the token's top k, so values and gradients equal the sparse
 * computation (an unchosen expert gets a zero gradient from that token, as with routing). The graph's shapes stay
 * static (no data-dependent gather of tokens per expert, which the IR and ONNX export would need dynamic shapes
 * for), and each expert projection stays an ordinary linear site, so LoRA, adapters and NF4 apply per expert by name.
 * Cost: E/k times the sparse MLP FLOPs (Mixtral 8/2 = 4×, Qwen3-MoE 128/8 = 16×), and E [tokens, expert_intermediate]
 * activations kept for the backward pass instead of k. Fine for the small models and LoRA runs this project targets;
 * large MoE checkpoints would want a sparse gather/scatter path.
 */
import type { Tensor } from '../ir/graph.ts';
import * as nn from '../nn/index.ts';
import * as op from '../ops/api.ts';
import type { MoeSpec } from './family.ts';
import type { MlpNames } from './params.ts';

export interface MoeOutput extends RouterStats {
  /** [B, R, C] */
  out: Tensor;
}

/**
 * Indicator [..., E] of each row's k largest values. The k-th largest value is found by k max-reductions, each
 * removing the values already taken, so no sort or top-k primitive is needed (k ≤ E is small). A tie at the k-th
 * value keeps every tied expert (torch.topk would keep one); router probabilities from real inputs do not tie.
 */
export function topKMask(p: Tensor, k: number): Tensor {
  const values = op.stopGradient(p); // the selection is piecewise constant: no derivative
  let rest = values;
  let kth = op.max(rest, -1, true); // [..., 1]
  for (let j = 1; j < k; j++) {
    rest = op.where(op.greaterEqual(rest, kth), -1, rest); // probabilities are ≥ 0, so -1 is never chosen again
    kth = op.max(rest, -1, true);
  }
  return op.greaterEqual(values, kth);
}

/** Router statistics of one block over its rows, for the load-balancing loss. */
export interface RouterStats {
  /** [E]: share of rows whose top k holds each expert (no gradient). */
  chosenShare: Tensor;
  /** [E]: mean router probability of each expert. */
  meanProb: Tensor;
}

/**
 * Routing weights from router logits [B, R, E]: softmax over all experts, zero outside each row's top k, divided
 * by their sum when `renormalize` (Mixtral; Qwen3-MoE with norm_topk_prob).  -> weights [B, R, E] and the stats.
 */
export function route(logits: Tensor, topK: number, renormalize: boolean): RouterStats & { weights: Tensor } {
  const probs = nn.softmax(logits, -1); // [B, R, E]
  const chosen = topKMask(probs, topK); // [B, R, E] bool
  let weights = op.where(chosen, probs, 0); // [B, R, E]
  if (renormalize) weights = op.div(weights, op.sum(weights, -1, true));
  const tokenAxes = [0, 1];
  return { weights, chosenShare: op.mean(op.cast(chosen, probs.dtype), tokenAxes), meanProb: op.mean(probs, tokenAxes) };
}

/**
 * One MoE block.  x: [B, R, C] -> [B, R, C]. `linear(name, x)` computes the named linear layer through the model's
 * hooks; `act` is the experts' gate activation.
 */
export function moeBlock(x: Tensor, spec: MoeSpec, names: MlpNames, linear: (name: string, x: Tensor) => Tensor, act: (x: Tensor) => Tensor): MoeOutput {
  const { weights, chosenShare, meanProb } = route(linear(names.router, x), spec.topK, spec.renormalize); // weights [B, R, E]
  let out: Tensor | undefined;
  for (let e = 0; e < spec.experts; e++) {
    const n = names.expert(e);
    const gate = act(linear(n.gate, x)); // [B, R, I]
    const up = linear(n.up, x); // [B, R, I]
    const y = op.mul(linear(n.down, op.mul(gate, up)), op.slice(weights, -1, e, e + 1)); // [B, R, C] × [B, R, 1]
    out = out ? op.add(out, y) : y;
  }
  return { out: out!, chosenShare, meanProb };
}

/**
 * transformers' load_balancing_loss_func without an attention mask: the router logits of all MoE layers are
 * concatenated, so with f_e the share of (layer, token) pairs whose top k holds expert e and P_e the mean router
 * probability of e over the same pairs, aux = E · Σ_e f_e · P_e. Only P carries a gradient. Every row counts (pads
 * too: the graph has no attention mask; pads sit at the end, after the real tokens).
 */
export function loadBalancingLoss(blocks: readonly RouterStats[], experts: number): Tensor {
  const mean = (ts: Tensor[]) => op.mul(ts.reduce((a, b) => op.add(a, b)), 1 / ts.length); // [E]
  const f = mean(blocks.map((b) => b.chosenShare));
  const p = mean(blocks.map((b) => b.meanProb));
  return op.mul(op.sum(op.mul(f, p)), experts);
}

/**
 * Bytes of the smallest float32 tensor the dense computation allocates per expert and block over `rows` token
 * rows: its [rows, I] gate, up and product, its [rows, C] output and weighted output. The backward pass keeps E of
 * each alive at once, so a run is mostly made of them; below glibc's mmap threshold they come from the heap, whose
 * freed blocks fragment and stay resident (the measured peak then exceeds the planned one, core/memory/allocator.ts).
 */
export function expertTensorBytes(spec: MoeSpec, hidden: number, rows: number): number {
  return 4 * rows * Math.min(spec.intermediate, hidden);
}
