/** Primitives that move data without arithmetic: reshape, transpose, broadcast, slice, pad, concat. */
import type { TensorType } from '../ir/graph.ts';
import { definePrimitive } from '../ir/primitive.ts';
import { addDims, broadcastShapes, dimEq, formatShape, numel, resolveDim, shapeEq, subDims, type Dim } from '../ir/shape.ts';
import * as op from './api.ts';
import { bytesOf, requireArity, streamingCost } from './util.ts';

export const reshape = definePrimitive<{ shape: readonly Dim[] }>({
  name: 'reshape',
  infer: (types, p) => {
    requireArity(types, 1);
    const t = types[0]!;
    if (!dimEq(numel(t.shape), numel(p.shape))) {
      throw new Error(`cannot reshape ${formatShape(t.shape)} (${numel(t.shape)} elements) to ${formatShape(p.shape)} (${numel(p.shape)} elements)`);
    }
    return { dtype: t.dtype, shape: p.shape };
  },
  lower: (ctx, eqn) => ctx.node('Reshape', [ctx.inputs[0]!, ctx.int64s(eqn.out.shape.map(Number))], [ctx.out]),
  jvp: ({ tangents: [t], params }) => op.reshape(t!, params.shape),
  vjp: ({ primals: [x], ct }) => [op.reshape(ct, x!.shape)],
  cost: () => ({ flops: 0, bytes: 0 }),
});

export const transpose = definePrimitive<{ perm: readonly number[] }>({
  name: 'transpose',
  infer: (types, p) => {
    requireArity(types, 1);
    const t = types[0]!;
    const sorted = [...p.perm].sort((a, b) => a - b);
    if (p.perm.length !== t.shape.length || sorted.some((v, i) => v !== i)) {
      throw new Error(`perm [${p.perm}] is not a permutation of the ${t.shape.length} axes`);
    }
    return { dtype: t.dtype, shape: p.perm.map((i) => t.shape[i]!) };
  },
  lower: (ctx, eqn) => ctx.node('Transpose', ctx.inputs, [ctx.out], { perm: [...eqn.params.perm] }),
  jvp: ({ tangents: [t], params }) => op.transpose(t!, params.perm),
  vjp: ({ ct, params }) => {
    const inverse = new Array<number>(params.perm.length);
    params.perm.forEach((p, i) => { inverse[p] = i; });
    return [op.transpose(ct, inverse)];
  },
  cost: (eqn) => streamingCost(eqn, 0),
});

/** Broadcast to a target shape (NumPy rules); the result always has exactly `shape`. */
export const broadcastTo = definePrimitive<{ shape: readonly Dim[] }>({
  name: 'broadcast_to',
  infer: (types, p) => {
    requireArity(types, 1);
    const t = types[0]!;
    const b = broadcastShapes(t.shape, p.shape);
    if (!b || !shapeEq(b, p.shape)) throw new Error(`cannot broadcast ${formatShape(t.shape)} to ${formatShape(p.shape)}`);
    return { dtype: t.dtype, shape: p.shape };
  },
  lower: (ctx, eqn) => ctx.node('Expand', [ctx.inputs[0]!, ctx.int64s(eqn.out.shape.map(Number))], [ctx.out]),
  jvp: ({ tangents: [t], params }) => op.broadcastTo(t!, params.shape),
  vjp: ({ primals: [x], ct }) => [op.unbroadcast(ct, x!.shape)],
  cost: (eqn) => streamingCost(eqn, 0),
});

/** Slice bounds and pad amounts may be symbolic (`T`, `T+5`): they are resolved with the shapes at compile time. */
export interface SliceParams { readonly axis: number; readonly start: Dim; readonly end: Dim }

/** A symbolic bound can only be checked where it is a number; `T+5 - 5` is known to be `T`, so it is exact there. */
const nonNegative = (d: Dim): boolean => typeof d !== 'number' || d >= 0;

/** Contiguous slice [start, end) along one axis. */
export const slice = definePrimitive<SliceParams>({
  name: 'slice',
  infer: (types, p) => {
    requireArity(types, 1);
    const t = types[0]!;
    const d = t.shape[p.axis];
    if (d === undefined) throw new Error(`axis ${p.axis} out of range for rank ${t.shape.length}`);
    const size = subDims(p.end, p.start);
    if (!(nonNegative(p.start) && nonNegative(size) && nonNegative(subDims(d, p.end)))) {
      throw new Error(`slice [${p.start}, ${p.end}) is out of range for axis ${p.axis} of size ${d}`);
    }
    const shape = [...t.shape];
    shape[p.axis] = size;
    return { dtype: t.dtype, shape };
  },
  specialize: (p, dims) => ({ axis: p.axis, start: resolveDim(p.start, dims), end: resolveDim(p.end, dims) }),
  lower: (ctx, { params: p }) =>
    ctx.node('Slice', [ctx.inputs[0]!, ctx.int64s([Number(p.start)]), ctx.int64s([Number(p.end)]), ctx.int64s([p.axis])], [ctx.out]),
  jvp: ({ tangents: [t], params }) => op.slice(t!, params.axis, params.start, params.end),
  vjp: ({ primals: [x], ct, params }) => {
    const size = x!.shape[params.axis]!;
    return [op.pad(ct, params.axis, params.start, subDims(size, params.end))];
  },
  cost: (eqn) => streamingCost(eqn, 0),
});

export interface PadParams { readonly axis: number; readonly before: Dim; readonly after: Dim }

/** Zero padding along one axis. */
export const pad = definePrimitive<PadParams>({
  name: 'pad',
  infer: (types, p) => {
    requireArity(types, 1);
    const t = types[0]!;
    const d = t.shape[p.axis];
    if (d === undefined) throw new Error(`axis ${p.axis} out of range for rank ${t.shape.length}`);
    if (!nonNegative(p.before) || !nonNegative(p.after)) throw new Error('pad amounts must be >= 0');
    const shape = [...t.shape];
    shape[p.axis] = addDims(addDims(d, p.before), p.after);
    return { dtype: t.dtype, shape };
  },
  specialize: (p, dims) => ({ axis: p.axis, before: resolveDim(p.before, dims), after: resolveDim(p.after, dims) }),
  lower: (ctx, { params: p, out }) => {
    const pads = new Array<number>(2 * out.shape.length).fill(0);
    pads[p.axis] = Number(p.before);
    pads[out.shape.length + p.axis] = Number(p.after);
    ctx.node('Pad', [ctx.inputs[0]!, ctx.int64s(pads)], [ctx.out], { mode: 'constant' });
  },
  jvp: ({ tangents: [t], params }) => op.pad(t!, params.axis, params.before, params.after),
  vjp: ({ primals: [x], ct, params }) => {
    const size = x!.shape[params.axis]!;
    return [op.slice(ct, params.axis, params.before, addDims(params.before, size))];
  },
  cost: (eqn) => streamingCost(eqn, 0),
});

export const concat = definePrimitive<{ axis: number }>({
  name: 'concat',
  infer: (types, p) => {
    if (types.length < 1) throw new Error('needs at least one input');
    const first = types[0]!;
    let total: Dim = 0;
    for (const t of types) {
      if (t.dtype !== first.dtype) throw new Error(`dtypes differ (${types.map((x) => x.dtype).join(', ')})`);
      const same = t.shape.length === first.shape.length && t.shape.every((d, i) => i === p.axis || dimEq(d, first.shape[i]!));
      if (!same) throw new Error(`shapes ${types.map((x) => formatShape(x.shape)).join(', ')} differ outside axis ${p.axis}`);
      total = addDims(total, t.shape[p.axis]!);
    }
    const shape = [...first.shape];
    shape[p.axis] = total;
    return { dtype: first.dtype, shape } satisfies TensorType;
  },
  lower: (ctx, eqn) => ctx.node('Concat', ctx.inputs, [ctx.out], { axis: eqn.params.axis }),
  jvp: ({ primals, tangents, params }) =>
    op.concat(tangents.map((t, i) => t ?? op.zerosLike(primals[i]!)), params.axis),
  vjp: ({ primals, ct, params, needs }) => {
    let offset: Dim = 0;
    return primals.map((x, i) => {
      const end = addDims(offset, x.shape[params.axis]!);
      const g = needs[i] ? op.slice(ct, params.axis, offset, end) : null;
      offset = end;
      return g;
    });
  },
  cost: (eqn) => ({ flops: 0, bytes: 2 * bytesOf(eqn.out) }),
});
