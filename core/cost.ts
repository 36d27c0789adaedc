import type { Graph } from './ir/graph.ts';

export interface GraphCost {
  flops: number;
  bytes: number;
  /** FLOPs per primitive name, for finding what dominates. */
  byPrim: Record<string, number>;
}

/** Sums each equation's cost rule over a graph with concrete shapes. */
export function graphCost(graph: Graph): GraphCost {
  const byPrim: Record<string, number> = {};
  let flops = 0, bytes = 0;
  for (const eqn of graph.eqns) {
    const c = eqn.prim.cost(eqn);
    flops += c.flops;
    bytes += c.bytes;
    byPrim[eqn.prim.name] = (byPrim[eqn.prim.name] ?? 0) + c.flops;
  }
  return { flops, bytes, byPrim };
}
