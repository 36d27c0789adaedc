/**
 * Activation checkpointing as a graph transform. The forward graph is cut at boundary values (the transformer
 * blocks' outputs) into segments. The result is a sequence of graphs run in order:
 *
 * 1. `forward`: the original forward pass, which also returns every value that crosses a segment boundary
 *    (`act:<id>`: the block outputs, rotary tables, masks). Nothing else survives it.
 * 2. one `stages[k]` per segment, last segment first: it takes the segment's inputs (parameters, batch, `act:` values)
 *    and the cotangents of the segment's outputs (`ct:<id>`), recomputes the segment, and returns the gradients of
 *    its trainable parameters and of its `act:` inputs, which become cotangents for earlier stages.
 *
 * Peak memory is then the crossing values plus one segment's activations, instead of every segment's activations.
 * The stages are separate graphs because onnxruntime chooses its own execution order inside one graph and would be
 * free to recompute everything early; across graphs the order is ours.
 */
import { isFloat } from '../ir/dtype.ts';
import { GraphBuilder, type Graph, type Tensor, type Var } from '../ir/graph.ts';
import { eliminateDeadCode } from '../ir/transform.ts';
import * as op from '../ops/api.ts';
import { gradName, valueAndGrad } from './vjp.ts';

export const actName = (id: number): string => `act:${id}`;
export const ctName = (id: number): string => `ct:${id}`;

export interface CheckpointStage {
  graph: Graph;
  /** `act:` values this stage reads (each also produces a gradient output when it is active). */
  acts: number[];
  /** Cotangent inputs `ct:<id>` this stage needs (outputs of its segment used by later segments). */
  cotangents: number[];
  /** Trainable parameters whose gradients this stage returns. */
  params: string[];
  /** Active `act:` inputs whose gradients this stage returns (as `grad:act:<id>`). */
  actGrads: number[];
}

export interface CheckpointPlan {
  forward: Graph;
  /** Last segment first: the order to run them. */
  stages: CheckpointStage[];
  /** For each crossing value, the index (in `stages`) after which no stage reads it any more. */
  lastReader: Map<number, number>;
}

/** Splits `forward` (outputs `loss`) at the equations producing `boundaries`, for gradients of `wrt`. */
export function checkpointPlan(forward: Graph, boundaries: readonly Var[], wrt: readonly string[]): CheckpointPlan {
  const loss = forward.outputs.find((o) => o.name === 'loss');
  if (!loss) throw new Error("checkpointing needs a forward graph with a 'loss' output");
  const eqnIndex = new Map(forward.eqns.map((e, i) => [e.out.id, i]));
  const cuts = boundaries.map((b) => {
    const i = eqnIndex.get(b.id);
    if (i === undefined) throw new Error(`checkpoint boundary %${b.id} is not computed by the forward graph`);
    return i;
  }).sort((a, b) => a - b);
  const segmentOf = (eqnPos: number) => cuts.findIndex((c) => eqnPos <= c) === -1 ? cuts.length : cuts.findIndex((c) => eqnPos <= c);
  const segment = new Map<number, number>(); // value id -> defining segment
  forward.eqns.forEach((e, i) => segment.set(e.out.id, segmentOf(i)));
  const nSeg = cuts.length + 1;

  // Values used in a later segment than the one defining them.
  const crossing = new Set<number>();
  const readers = new Map<number, Set<number>>();
  forward.eqns.forEach((e, i) => {
    const s = segmentOf(i);
    for (const v of e.inputs) {
      const d = segment.get(v.id);
      if (d !== undefined && d < s) {
        crossing.add(v.id);
        if (!readers.has(v.id)) readers.set(v.id, new Set());
        readers.get(v.id)!.add(s);
      }
    }
  });

  const inputByName = new Map(forward.inputs.map((i) => [i.name, i.v]));
  const wrtIds = new Set(wrt.map((n) => inputByName.get(n)!.id));
  const active = new Set(wrtIds);
  for (const e of forward.eqns) if (e.inputs.some((v) => active.has(v.id))) active.add(e.out.id);

  // Forward stage: the original graph plus every crossing value as an output.
  const vars = new Map<number, Var>(forward.eqns.map((e) => [e.out.id, e.out]));
  const forwardStage: Graph = {
    ...forward,
    outputs: [...forward.outputs, ...[...crossing].map((id) => ({ name: actName(id), v: vars.get(id)! }))],
  };

  const stages: CheckpointStage[] = [];
  const lastReader = new Map<number, number>();
  for (let s = nSeg - 1; s >= 0; s--) {
    const eqns = forward.eqns.filter((_, i) => segmentOf(i) === s);
    if (eqns.length === 0) continue;
    const g = new GraphBuilder();
    const env = new Map<number, Tensor>();
    const acts: number[] = [], params: string[] = [];
    const read = (v: Var): Tensor => {
      let t = env.get(v.id);
      if (t) return t;
      const name = [...inputByName].find(([, iv]) => iv.id === v.id)?.[0];
      if (name !== undefined) {
        t = g.input(name, v.dtype, v.shape);
        if (wrtIds.has(v.id)) params.push(name);
      } else {
        t = g.input(actName(v.id), v.dtype, v.shape);
        acts.push(v.id);
      }
      env.set(v.id, t);
      return t;
    };
    for (const e of eqns) env.set(e.out.id, g.bind(e.prim, e.inputs.map(read), e.params));
    // The stage's objective: sum of <output, its cotangent> over values later segments read, plus the loss itself.
    const cotangents = eqns.map((e) => e.out.id).filter((id) => crossing.has(id) && active.has(id));
    let objective: Tensor | undefined = segment.get(loss.v.id) === s ? env.get(loss.v.id) : undefined;
    for (const id of cotangents) {
      const y = env.get(id)!;
      const term = op.sum(op.mul(y, g.input(ctName(id), y.dtype, y.shape)));
      objective = objective ? op.add(objective, term) : term;
    }
    if (!objective) continue; // nothing trainable flows through this segment
    const actGrads = acts.filter((id) => active.has(id) && isFloat(vars.get(id)!.dtype));
    const graph = valueAndGrad(eliminateDeadCode(g.build({ objective })), {
      of: 'objective', wrt: [...params, ...actGrads.map(actName)], keep: [],
    });
    const index = stages.length;
    for (const id of acts) if (!lastReader.has(id) || lastReader.get(id)! < index) lastReader.set(id, index);
    stages.push({ graph, acts, cotangents, params, actGrads });
  }
  return { forward: forwardStage, stages, lastReader };
}

export { gradName };
