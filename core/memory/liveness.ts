/**
 * Peak memory of running a graph, from its execution order: each equation allocates its output when it runs and
 * every value is freed after its last use (graph outputs live to the end, since they are handed back). Views
 * (reshape, stop_gradient) share their input's buffer. Graph inputs are owned by the caller and not counted here.
 */
import type { Graph } from '../ir/graph.ts';
import { byteSize } from '../ir/dtype.ts';

const VIEWS = new Set(['reshape', 'stop_gradient']);

export interface LivenessReport {
  /** Largest total of live intermediate and output bytes at any point. */
  peakBytes: number;
  /** Index of the equation at which the peak occurs. */
  peakAt: number;
  /** Bytes of the graph's outputs (alive at the end). */
  outputBytes: number;
}

function bytes(shape: readonly (number | string)[], dtype: Parameters<typeof byteSize>[0]): number {
  let n = byteSize(dtype);
  for (const d of shape) {
    if (typeof d !== 'number') throw new Error('liveness: specialise the graph (resolve dims) first');
    n *= d;
  }
  return n;
}

export function simulateLiveness(graph: Graph): LivenessReport {
  // Buffers: a view points at its source's buffer; a buffer is freed when none of its values has uses left.
  const bufferOf = new Map<number, number>();
  const remaining = new Map<number, number>(); // buffer id -> uses left (across all values in it)
  const size = new Map<number, number>();
  const inputIds = new Set(graph.inputs.map((i) => i.v.id));
  const outputIds = new Set(graph.outputs.map((o) => o.v.id));
  const uses = new Map<number, number>();
  for (const e of graph.eqns) for (const v of e.inputs) uses.set(v.id, (uses.get(v.id) ?? 0) + 1);

  let live = 0, peak = 0, peakAt = -1;
  graph.eqns.forEach((e, k) => {
    const src = e.inputs[0];
    if (VIEWS.has(e.prim.name) && src && bufferOf.has(src.id)) {
      const b = bufferOf.get(src.id)!;
      bufferOf.set(e.out.id, b);
      remaining.set(b, remaining.get(b)! + (uses.get(e.out.id) ?? 0) + (outputIds.has(e.out.id) ? 1 : 0));
    } else if (!VIEWS.has(e.prim.name) || !src || !inputIds.has(src.id)) {
      const n = bytes(e.out.shape, e.out.dtype);
      bufferOf.set(e.out.id, e.out.id);
      size.set(e.out.id, n);
      remaining.set(e.out.id, (uses.get(e.out.id) ?? 0) + (outputIds.has(e.out.id) ? 1 : 0));
      live += n;
    }
    if (live > peak) {
      peak = live;
      peakAt = k;
    }
    for (const v of e.inputs) {
      const b = bufferOf.get(v.id);
      if (b === undefined) continue; // a graph input
      const left = remaining.get(b)! - 1;
      remaining.set(b, left);
      if (left === 0) live -= size.get(b)!;
    }
    const own = bufferOf.get(e.out.id);
    if (own !== undefined && remaining.get(own) === 0) live -= size.get(own)!; // dead on arrival
  });
  const outputBytes = graph.outputs.reduce((s, o) => s + bytes(o.v.shape, o.v.dtype), 0);
  return { peakBytes: peak, peakAt, outputBytes };
}

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
  for (const e of graph.eqns) if (kept.has(e.out.id)) total += bytes(e.out.shape, e.out.dtype);
  return total;
}
