import type { Eqn, Graph, Var } from './graph.ts';
import { GraphBuilder, Tensor } from './graph.ts';

/**
 * Copies a graph's inputs and equations into a fresh builder, returning the builder and the mapping from old
 * vars to new tensors. Transforms (autodiff, specialisation) start from this and then add equations of their own.
 */
export function replay(
  graph: Graph,
  onEqn?: (eqn: Eqn, g: GraphBuilder, env: Map<number, Tensor>) => void,
  afterInputs?: (g: GraphBuilder) => void,
): {
  g: GraphBuilder;
  env: Map<number, Tensor>;
} {
  const g = new GraphBuilder();
  const env = new Map<number, Tensor>();
  for (const i of graph.inputs) env.set(i.v.id, g.input(i.name, i.v.dtype, i.v.shape));
  afterInputs?.(g);
  for (const eqn of graph.eqns) {
    const ins = eqn.inputs.map((v) => lookup(env, v));
    env.set(eqn.out.id, g.bind(eqn.prim, ins, eqn.params));
    onEqn?.(eqn, g, env);
  }
  return { g, env };
}

export function lookup(env: Map<number, Tensor>, v: Var): Tensor {
  const t = env.get(v.id);
  if (!t) throw new Error(`internal: value %${v.id} used before it is defined`);
  return t;
}

/** Removes equations whose results reach no output. */
export function eliminateDeadCode(graph: Graph): Graph {
  const live = new Set(graph.outputs.map((o) => o.v.id));
  const kept: Eqn[] = [];
  for (let i = graph.eqns.length - 1; i >= 0; i--) {
    const eqn = graph.eqns[i]!;
    if (!live.has(eqn.out.id)) continue;
    kept.push(eqn);
    for (const v of eqn.inputs) live.add(v.id);
  }
  return { ...graph, eqns: kept.reverse() };
}
