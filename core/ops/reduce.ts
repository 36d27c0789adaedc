/** Reductions over a set of axes, optionally keeping them as size-1 dims. */
import type { Tensor, TensorType } from '../ir/graph.ts';
import { definePrimitive } from '../ir/primitive.ts';
import type { Dim } from '../ir/shape.ts';
import * as op from './api.ts';
import { requireArity, streamingCost } from './util.ts';

export interface ReduceParams {
  /** Normalised (non-negative, sorted, unique) axes. */
  readonly axes: readonly number[];
  readonly keepdims: boolean;
}

function inferReduce(types: readonly TensorType[], p: ReduceParams): TensorType {
  requireArity(types, 1);
  const t = types[0]!;
  for (const a of p.axes) if (a < 0 || a >= t.shape.length) throw new Error(`axis ${a} out of range for rank ${t.shape.length}`);
  const shape: Dim[] = [];
  t.shape.forEach((d, i) => {
    if (!p.axes.includes(i)) shape.push(d);
    else if (p.keepdims) shape.push(1);
  });
  return { dtype: t.dtype, shape };
}

/** Shape of the reduced value with the reduced axes kept as 1, so it broadcasts against the input. */
function keptShape(x: Tensor, p: ReduceParams): Dim[] {
  return x.shape.map((d, i) => (p.axes.includes(i) ? 1 : d));
}

export const reduceSum = definePrimitive<ReduceParams>({
  name: 'reduce_sum',
  infer: inferReduce,
  lower: (ctx, eqn) =>
    ctx.node('ReduceSum', [ctx.inputs[0]!, ctx.int64s(eqn.params.axes)], [ctx.out], { keepdims: eqn.params.keepdims ? 1 : 0 }),
  jvp: ({ tangents: [t], params }) => op.sum(t!, params.axes, params.keepdims),
  vjp: ({ primals: [x], ct, params }) => [op.broadcastTo(op.reshape(ct, keptShape(x!, params)), x!.shape)],
  cost: (eqn) => streamingCost(eqn, 0),
});

export const reduceMax = definePrimitive<ReduceParams>({
  name: 'reduce_max',
  infer: inferReduce,
  lower: (ctx, eqn) =>
    ctx.node('ReduceMax', [ctx.inputs[0]!, ctx.int64s(eqn.params.axes)], [ctx.out], { keepdims: eqn.params.keepdims ? 1 : 0 }),
  // The derivative flows to the arg-max; ties share it equally.
  jvp: ({ primals: [x], tangents: [t], out, params }) => {
    const w = maxWeights(x!, out, params);
    return op.sum(op.mul(w, t!), params.axes, params.keepdims);
  },
  vjp: ({ primals: [x], ct, out, params }) => {
    const w = maxWeights(x!, out, params);
    return [op.mul(w, op.reshape(ct, keptShape(x!, params)))];
  },
  cost: (eqn) => streamingCost(eqn, 0),
});

function maxWeights(x: Tensor, out: Tensor, p: ReduceParams): Tensor {
  const hit = op.cast(op.equal(x, op.reshape(out, keptShape(x, p))), x.dtype);
  return op.div(hit, op.sum(hit, p.axes, true));
}
