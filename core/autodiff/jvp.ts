import { isFloat } from '../ir/dtype.ts';
import type { Graph, Tensor } from '../ir/graph.ts';
import { eliminateDeadCode, lookup, replay } from '../ir/transform.ts';
import * as op from '../ops/api.ts';

/** Input name that carries the tangent of input `name`, and output name of an output's tangent. */
export const tangentName = (name: string): string => `tangent:${name}`;

/**
 * Forward-mode autodiff: adds an input `tangent:<name>` for each `wrt` input and an output `tangent:<out>` for every
 * output, the directional derivative along the given tangents. One pass, no stored activations beyond the forward's.
 */
export function jvp(graph: Graph, opts: { wrt: readonly string[] }): Graph {
  const wrt = opts.wrt.map((name) => {
    const input = graph.inputs.find((i) => i.name === name);
    if (!input) throw new Error(`jvp: no input named '${name}'; inputs are ${graph.inputs.map((i) => i.name).join(', ')}`);
    if (!isFloat(input.v.dtype)) throw new Error(`jvp: cannot take a tangent of '${name}': it is ${input.v.dtype}, not a float tensor`);
    return input;
  });

  const tangents = new Map<number, Tensor>();
  const { g, env } = replay(graph, (eqn, _g, env) => {
    const ts = eqn.inputs.map((v) => tangents.get(v.id) ?? null);
    if (ts.every((t) => t === null)) return;
    const t = eqn.prim.jvp({
      primals: eqn.inputs.map((v) => lookup(env, v)),
      tangents: ts,
      out: lookup(env, eqn.out),
      params: eqn.params,
    });
    if (t) tangents.set(eqn.out.id, t);
  }, (g) => {
    for (const input of wrt) tangents.set(input.v.id, g.input(tangentName(input.name), input.v.dtype, input.v.shape));
  });

  const outputs: Record<string, Tensor> = {};
  for (const o of graph.outputs) outputs[o.name] = lookup(env, o.v);
  for (const o of graph.outputs) {
    const primal = lookup(env, o.v);
    outputs[tangentName(o.name)] = tangents.get(o.v.id) ?? op.zerosLike(primal);
  }
  return eliminateDeadCode(g.build(outputs));
}
