import type { Graph, Var } from './graph.ts';
import { formatShape, shapeEq } from './shape.ts';

/**
 * Type checker: every value is defined once before it is used, and every equation's output type is what its
 * primitive's shape rule says. Returns all problems found (empty when the graph is well typed).
 */
export function checkGraph(graph: Graph): string[] {
  const problems: string[] = [];
  const defined = new Set<number>();
  const define = (v: Var, where: string) => {
    if (defined.has(v.id)) problems.push(`${where}: %${v.id} is defined twice`);
    defined.add(v.id);
  };
  for (const i of graph.inputs) define(i.v, `input '${i.name}'`);
  graph.eqns.forEach((eqn, k) => {
    const where = `eqn ${k} (${eqn.prim.name})`;
    for (const v of eqn.inputs) if (!defined.has(v.id)) problems.push(`${where}: uses %${v.id} before it is defined`);
    try {
      const t = eqn.prim.infer(eqn.inputs, eqn.params);
      if (t.dtype !== eqn.out.dtype || !shapeEq(t.shape, eqn.out.shape)) {
        problems.push(`${where}: output recorded as ${eqn.out.dtype}${formatShape(eqn.out.shape)} but the rule gives ${t.dtype}${formatShape(t.shape)}`);
      }
    } catch (e) {
      problems.push(`${where}: ${(e as Error).message}`);
    }
    define(eqn.out, where);
  });
  for (const o of graph.outputs) if (!defined.has(o.v.id)) problems.push(`output '${o.name}': %${o.v.id} is never defined`);
  return problems;
}

/** Throws with every problem listed when the graph does not type-check. */
export function assertGraph(graph: Graph): void {
  const problems = checkGraph(graph);
  if (problems.length) throw new Error(`graph does not type-check:\n  ${problems.join('\n  ')}`);
}
