/**
 * The optimizer update fused into the gradient graph, for a runner that keeps the training state (the trainer's
 * state-on-runner mode, runners/holding.ts stores): one graph computes the loss, the gradients, their global norm,
 * the clip and the update, and returns only the loss and the norm. Its new parameters and moments are fed back
 * into the store under the names the next step reads, so none of them crosses to this process between steps.
 *
 *   inputs   the gradient graph's (parameters by name, batch); `<slot>:<name>` for each moment (AdamW m, v; SGD
 *            buf), shaped as the parameter; coef (float32[N·K], COEFFICIENTS per trainable tensor in order);
 *            maxNorm (float32[1]) when clipping
 *   outputs  loss; norm when clipping; `new:<name>` and `new_<slot>:<name>` (fed back: see `fusedFeedback`)
 *
 * The arithmetic is device-graph.ts's, element by element, so a fused step gives the bits of the gradient graph
 * followed by the update graphs.
 */
import type { Graph, Tensor } from '../ir/graph.ts';
import { lookup, replay } from '../ir/transform.ts';
import * as op from '../ops/api.ts';
import { COEFFICIENTS, adamwUpdate, clipScale, momentSlots, sgdUpdate, type UpdateRule } from './device-graph.ts';

export interface FusedSpec {
  readonly rule: UpdateRule;
  /** The trainable tensors in order (the gradient graph has `grad:<name>` for each), and whether each is decayed. */
  readonly params: readonly { readonly name: string; readonly decayed: boolean }[];
  readonly clip: boolean;
}

/** The input name of a moment of a parameter in a fused graph (and in the store). */
export const momentName = (slot: string, param: string) => `${slot}:${param}`;

/** `{ output: input }`: each new parameter and moment feeds the input it replaces on the next step. */
export function fusedFeedback(spec: FusedSpec): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const { name } of spec.params) {
    pairs[`new:${name}`] = name;
    for (const slot of momentSlots(spec.rule)) pairs[`new_${momentName(slot, name)}`] = momentName(slot, name);
  }
  return pairs;
}

export function fusedGraph(gradGraph: Graph, spec: FusedSpec): Graph {
  const { g, env } = replay(gradGraph);
  const output = (name: string): Tensor => {
    const o = gradGraph.outputs.find((x) => x.name === name);
    if (!o) throw new Error(`fusedGraph: the gradient graph has no output '${name}'`);
    return lookup(env, o.v);
  };
  const input = (name: string): Tensor => {
    const i = gradGraph.inputs.find((x) => x.name === name);
    if (!i) throw new Error(`fusedGraph: the gradient graph has no input '${name}'`);
    return lookup(env, i.v);
  };
  const k = COEFFICIENTS[spec.rule.kind].length, slots = momentSlots(spec.rule);
  const coef = g.input('coef', 'float32', [spec.params.length * k]);
  const grads = spec.params.map(({ name }) => output(`grad:${name}`));
  const out: Record<string, Tensor> = { loss: output('loss') };
  let scale: Tensor | undefined;
  if (spec.clip) {
    const flat = grads.map((t) => op.reshape(t, [t.shape.reduce<number>((a, b) => a * (b as number), 1)])); // [n]
    const clipped = clipScale(flat, g.input('maxNorm', 'float32', [1]));
    out.norm = clipped.norm;
    scale = clipped.scale;
  }
  spec.params.forEach(({ name, decayed }, i) => {
    const p = input(name);
    const moments = slots.map((slot) => g.input(momentName(slot, name), 'float32', p.shape));
    const c = (j: number) => op.slice(coef, 0, i * k + j, i * k + j + 1); // [1]
    const grad = scale ? op.mul(grads[i]!, scale) : grads[i]!;
    const next = spec.rule.kind === 'adamw'
      ? adamwUpdate(spec.rule, p, grad, moments[0]!, moments[1]!, decayed ? c(0) : undefined, c(1), c(2))
      : sgdUpdate(spec.rule, p, grad, moments[0], c(0), decayed ? c(1) : undefined, c(2), c(3));
    out[`new:${name}`] = next.p;
    slots.forEach((slot, j) => { out[`new_${momentName(slot, name)}`] = next.moments[j]!; });
  });
  return g.build(out);
}
