import { isFloat } from '../ir/dtype.ts';
import type { Graph, Tensor } from '../ir/graph.ts';
import { eliminateDeadCode, lookup, replay } from '../ir/transform.ts';
import * as op from '../ops/api.ts';

export interface GradOptions {
  /** Name of the scalar output to differentiate. */
  of: string;
  /** Names of the inputs that get gradients (the trainable parameters). */
  wrt: readonly string[];
  /** Other outputs of the original graph to keep (default: all). */
  keep?: readonly string[];
}

const SCATTERS = new Set(['scatter_add_rows', 'scatter_add_along_axis']);

/**
 * `dense + scatter(zeros, idx, u)` is `scatter(dense, idx, u)`: when one cotangent is a scatter into a zero buffer
 * (the transpose of a gather), it is re-issued on top of the other, so neither the zeros nor the sum is materialised.
 */
function scatterInto(dense: Tensor, sparse: Tensor): Tensor | undefined {
  const eqn = sparse.builder.producer(sparse);
  if (!eqn || !SCATTERS.has(eqn.prim.name) || dense.dtype !== sparse.dtype) return undefined;
  const base = sparse.builder.producer(sparse.builder.wrap(eqn.inputs[0]!));
  const zeroFill = base?.prim.name === 'constant' && (base.params as { value?: unknown }).value === 0;
  if (!zeroFill || dense.shape.length !== sparse.shape.length || dense.shape.some((d, i) => d !== sparse.shape[i])) return undefined;
  const [, idx, upd] = eqn.inputs.map((v) => sparse.builder.wrap(v));
  return sparse.builder.bind(eqn.prim, [dense, idx!, upd!], eqn.params);
}

/** Output name under which the gradient of input `name` is returned. */
export const gradName = (name: string): string => `grad:${name}`;

/**
 * Reverse-mode autodiff: returns a graph with the kept outputs plus `grad:<name>` for each `wrt` input.
 * Only values that depend on a `wrt` input get cotangents, so frozen inputs produce no gradient computation and
 * no activation is kept alive for their sake. Dead code is removed.
 */
export function valueAndGrad(graph: Graph, opts: GradOptions): Graph {
  const target = graph.outputs.find((o) => o.name === opts.of);
  if (!target) throw new Error(`valueAndGrad: no output named '${opts.of}'; outputs are ${graph.outputs.map((o) => o.name).join(', ')}`);
  if (target.v.shape.length !== 0 || !isFloat(target.v.dtype)) {
    throw new Error(`valueAndGrad: output '${opts.of}' must be a float scalar, got ${target.v.dtype}[${target.v.shape}]`);
  }
  const wrtIds = new Set<number>();
  for (const name of opts.wrt) {
    const input = graph.inputs.find((i) => i.name === name);
    if (!input) throw new Error(`valueAndGrad: no input named '${name}'; inputs are ${graph.inputs.map((i) => i.name).join(', ')}`);
    if (!isFloat(input.v.dtype)) throw new Error(`valueAndGrad: cannot differentiate with respect to '${name}': it is ${input.v.dtype}, not a float tensor`);
    wrtIds.add(input.v.id);
  }

  // Values that depend on a trainable input.
  const active = new Set(wrtIds);
  for (const eqn of graph.eqns) if (eqn.inputs.some((v) => active.has(v.id))) active.add(eqn.out.id);

  const { g, env } = replay(graph);
  const cts = new Map<number, Tensor>();
  const accumulate = (id: number, ct: Tensor) => {
    const prev = cts.get(id);
    cts.set(id, prev ? (scatterInto(prev, ct) ?? scatterInto(ct, prev) ?? op.add(prev, ct)) : ct);
  };
  const loss = lookup(env, target.v);
  if (active.has(target.v.id)) accumulate(target.v.id, op.scalar(loss, 1));

  for (let i = graph.eqns.length - 1; i >= 0; i--) {
    const eqn = graph.eqns[i]!;
    const ct = cts.get(eqn.out.id);
    if (!ct || !active.has(eqn.out.id)) continue;
    const needs = eqn.inputs.map((v) => active.has(v.id) && isFloat(v.dtype));
    const inCts = eqn.prim.vjp({
      primals: eqn.inputs.map((v) => lookup(env, v)),
      out: lookup(env, eqn.out),
      ct,
      params: eqn.params,
      needs,
    });
    eqn.inputs.forEach((v, k) => {
      const c = inCts[k];
      if (c && needs[k]) accumulate(v.id, c);
    });
    cts.delete(eqn.out.id); // release our reference; liveness is decided by the final graph anyway
  }

  const outputs: Record<string, Tensor> = {};
  const keep = opts.keep ?? graph.outputs.map((o) => o.name);
  for (const o of graph.outputs) if (keep.includes(o.name) || o.name === opts.of) outputs[o.name] = lookup(env, o.v);
  for (const name of opts.wrt) {
    const input = graph.inputs.find((i) => i.name === name)!;
    outputs[gradName(name)] = cts.get(input.v.id) ?? op.zerosLike(lookup(env, input.v));
  }
  return eliminateDeadCode(g.build(outputs));
}
