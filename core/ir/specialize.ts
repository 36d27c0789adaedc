import type { Eqn, Graph, Var } from './graph.ts';
import { resolveShape } from './shape.ts';

/** Resolves every symbolic dim (e.g. `B`, `T`) to a number. Lowering and costing need concrete shapes. */
export function specialize(graph: Graph, dims: Readonly<Record<string, number>>): Graph {
  const vars = new Map<number, Var>();
  const conc = (v: Var): Var => {
    let c = vars.get(v.id);
    if (!c) {
      c = { id: v.id, dtype: v.dtype, shape: resolveShape(v.shape, dims) };
      vars.set(v.id, c);
    }
    return c;
  };
  return {
    inputs: graph.inputs.map((i) => ({ name: i.name, v: conc(i.v) })),
    eqns: graph.eqns.map((e): Eqn => ({
      ...e,
      inputs: e.inputs.map(conc),
      out: conc(e.out),
      params: e.prim.specialize ? e.prim.specialize(e.params, dims) : e.params,
    })),
    outputs: graph.outputs.map((o) => ({ name: o.name, v: conc(o.v) })),
  };
}
