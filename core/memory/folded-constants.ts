import type { Graph } from '../ir/graph.ts';
import { byteSize } from '../ir/dtype.ts';

/**
 * Values that depend on no graph input are computed once when the session loads (onnxruntime folds constants) and
 * stay in the session as initializers. Returns the bytes of those that non-constant equations consume.
 */
export function foldedConstantBytes(graph: Graph): number {
  const constant = new Set<number>();
  for (const e of graph.eqns) if (e.inputs.every((v) => constant.has(v.id))) constant.add(e.out.id);
  const kept = new Set<number>();
  for (const e of graph.eqns) {
    if (constant.has(e.out.id)) continue;
    for (const v of e.inputs) if (constant.has(v.id)) kept.add(v.id);
  }
  for (const o of graph.outputs) if (constant.has(o.v.id)) kept.add(o.v.id);
  let total = 0;
  for (const e of graph.eqns) {
    if (kept.has(e.out.id)) total += e.out.shape.reduce<number>((a, d) => a * Number(d), byteSize(e.out.dtype));
  }
  return total;
}
