/** Constants, index ramps, casts and gradient stops. */
import type { DType, TypedArray } from '../ir/dtype.ts';
import { isFloat } from '../ir/dtype.ts';
import { definePrimitive } from '../ir/primitive.ts';
import { normAxis, resolveDim, type Dim } from '../ir/shape.ts';
import * as op from './api.ts';
import { bytesOf, castCode, count, requireArity, streamingCost } from './util.ts';

export interface ConstantParams {
  readonly dtype: DType;
  readonly shape: readonly Dim[];
  /** One value (filled over the shape) or the full row-major data. */
  readonly value: number | TypedArray;
  /** Divide a filled value by this (possibly symbolic) dim once dims are known, e.g. 1 / (B*T) for a mean. */
  readonly per?: Dim;
}

export const constant = definePrimitive<ConstantParams>({
  name: 'constant',
  infer: (types, p) => {
    requireArity(types, 0);
    if (typeof p.value !== 'number' && p.shape.some((d) => typeof d !== 'number')) {
      throw new Error('a constant with explicit data needs a concrete shape');
    }
    if (typeof p.value !== 'number' && p.value.length !== count(p.shape)) {
      throw new Error(`constant data has ${p.value.length} elements, shape needs ${count(p.shape)}`);
    }
    return { dtype: p.dtype, shape: p.shape };
  },
  specialize: (p, dims) => (p.per === undefined || typeof p.value !== 'number' ? p : { dtype: p.dtype, shape: p.shape, value: p.value / resolveDim(p.per, dims) }),
  lower: (ctx, eqn) => {
    const { value, dtype, per } = eqn.params;
    if (per !== undefined && typeof per !== 'number') throw new Error(`constant divided by unresolved dim '${per}': compile with dims`);
    if (typeof value === 'number') {
      // A scalar expanded to the shape: the initializer stays one element.
      const s = ctx.scalar(per === undefined ? value : value / per, dtype);
      if (eqn.out.shape.length === 0) ctx.node('Identity', [s], [ctx.out]);
      else ctx.node('Expand', [s, ctx.int64s(eqn.out.shape.map(Number))], [ctx.out]);
    } else {
      ctx.node('Identity', [ctx.tensor(dtype, eqn.out.shape.map(Number), value)], [ctx.out]);
    }
  },
  jvp: () => null,
  vjp: () => [],
  cost: (eqn) => ({ flops: 0, bytes: bytesOf(eqn.out) }),
});

/** iota: the index along `axis`, broadcast over `shape`. Builds masks and position ids without host data. */
export const iota = definePrimitive<{ dtype: DType; shape: readonly Dim[]; axis: number }>({
  name: 'iota',
  infer: (types, p) => {
    requireArity(types, 0);
    normAxis(p.axis, p.shape.length, 'iota');
    return { dtype: p.dtype, shape: p.shape };
  },
  lower: (ctx, { params: p, out }) => {
    const shape = out.shape.map(Number);
    const n = shape[p.axis]!;
    const ramp = ctx.temp('ramp');
    ctx.node('Range', [ctx.scalar(0, p.dtype), ctx.scalar(n, p.dtype), ctx.scalar(1, p.dtype)], [ramp]);
    const along = shape.map((d, i) => (i === p.axis ? d : 1));
    const shaped = ctx.temp('ramp_shaped');
    ctx.node('Reshape', [ramp, ctx.int64s(along)], [shaped]);
    ctx.node('Expand', [shaped, ctx.int64s(shape)], [ctx.out]);
  },
  jvp: () => null,
  vjp: () => [],
  cost: (eqn) => ({ flops: 0, bytes: bytesOf(eqn.out) }),
});

export const cast = definePrimitive<{ dtype: DType }>({
  name: 'cast',
  infer: (types, p) => {
    requireArity(types, 1);
    return { dtype: p.dtype, shape: types[0]!.shape };
  },
  lower: (ctx, eqn) => {
    ctx.node('Cast', ctx.inputs, [ctx.out], { to: castCode(eqn.params.dtype) });
  },
  // Derivatives flow only between float types.
  jvp: ({ primals: [x], tangents: [t], params }) => (isFloat(x!.dtype) && isFloat(params.dtype) ? op.cast(t!, params.dtype) : null),
  vjp: ({ primals: [x], ct }) => [isFloat(x!.dtype) && isFloat(ct.dtype) ? op.cast(ct, x!.dtype) : null],
  cost: (eqn) => streamingCost(eqn, 0),
});

/** Identity in the forward pass; no derivative flows through it. */
export const stopGradient = definePrimitive<Record<string, never>>({
  name: 'stop_gradient',
  infer: (types) => {
    requireArity(types, 1);
    return types[0]!;
  },
  lower: (ctx) => ctx.node('Identity', ctx.inputs, [ctx.out]),
  jvp: () => null,
  vjp: () => [null],
  cost: () => ({ flops: 0, bytes: 0 }),
});
