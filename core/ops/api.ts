/**
 * The functional op API: every function records one primitive (or a few) in the graph of its tensor inputs.
 * Plain numbers are accepted wherever a tensor is and become scalar constants of the other operand's dtype.
 *
 * ```ts
 * const y = add(matmul(x, w), b);   // x: [B, 4], w: [4, 8], b: [8] -> y: [B, 8]
 * ```
 */
import type { DType, TypedArray } from '../ir/dtype.ts';
import { Tensor } from '../ir/graph.ts';
import { addDims, broadcastShapes, dimEq, mulDims, normAxis, normDim, shapeEq, subDims, type Dim, type Shape } from '../ir/shape.ts';
import * as ew from './elementwise.ts';
import * as idx from './indexing.ts';
import * as lay from './layout.ts';
import { matmul as matmulPrim, type MatmulParams } from './matmul.ts';
import * as misc from './misc.ts';
import { reduceMax, reduceSum } from './reduce.ts';
import { softmax as softmaxPrim } from './softmax.ts';
import { silu as siluPrim } from './silu.ts';
import { rmsNorm as rmsNormPrim } from './rmsnorm.ts';
import { widen, widenedFrom, widenedMatmul, type HalfFormat } from './widen.ts';

export type Operand = Tensor | number;
export { addDims, mulDims, subDims };

/** Turns numbers into scalar constants next to a tensor operand. */
function lift(a: Operand, b: Operand): [Tensor, Tensor] {
  if (a instanceof Tensor && b instanceof Tensor) return [a, b];
  if (a instanceof Tensor) return [a, scalar(a, b as number)];
  if (b instanceof Tensor) return [scalar(b, a as number), b];
  throw new TypeError('at least one operand must be a tensor');
}

/** A rank-0 constant in the graph of `like`, with its dtype unless given. */
export function scalar(like: Tensor, value: number, dtype: DType = like.dtype): Tensor {
  return like.builder.bind(misc.constant, [], { dtype, shape: [], value });
}

/**
 * If `t` is an explicit broadcast whose source broadcasts against `other` to the same result, returns the source:
 * the elementwise op then broadcasts by itself and the expanded copy is never materialised (derivative rules emit
 * many such broadcasts).
 */
function unexpanded(t: Tensor, other: Tensor): Tensor {
  const eqn = t.builder.producer(t);
  if (eqn?.prim !== lay.broadcastTo) return t;
  const src = t.builder.wrap(eqn.inputs[0]!);
  const shape = broadcastShapes(src.shape, other.shape);
  return shape && shapeEq(shape, broadcastShapes(t.shape, other.shape) ?? []) ? src : t;
}

function binary(prim: typeof ew.add, a: Operand, b: Operand): Tensor {
  let [x, y] = lift(a, b);
  if (ELEMENTWISE_ARITH.has(prim)) {
    const x2 = unexpanded(x, y);
    y = unexpanded(y, x2);
    x = x2;
  }
  return x.builder.bind(prim, [x, y], {});
}

const ELEMENTWISE_ARITH = new Set([ew.add, ew.sub, ew.mul, ew.div]);
export const add = (a: Operand, b: Operand): Tensor => binary(ew.add, a, b);
export const sub = (a: Operand, b: Operand): Tensor => binary(ew.sub, a, b);
export const mul = (a: Operand, b: Operand): Tensor => binary(ew.mul, a, b);
export const div = (a: Operand, b: Operand): Tensor => binary(ew.div, a, b);
export const pow = (a: Operand, b: Operand): Tensor => binary(ew.pow, a, b);
export const maximum = (a: Operand, b: Operand): Tensor => binary(ew.maximum, a, b);
export const less = (a: Operand, b: Operand): Tensor => binary(ew.less, a, b);
export const lessEqual = (a: Operand, b: Operand): Tensor => binary(ew.lessEqual, a, b);
export const greater = (a: Operand, b: Operand): Tensor => binary(ew.less, b, a);
export const greaterEqual = (a: Operand, b: Operand): Tensor => binary(ew.lessEqual, b, a);
export const equal = (a: Operand, b: Operand): Tensor => binary(ew.equal, a, b);

export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const [x, y] = lift(a, b);
  return cond.builder.bind(ew.where, [cond, x, y], {});
}

const unary = (prim: typeof ew.exp) => (x: Tensor): Tensor => x.builder.bind(prim, [x], {});
export const neg = unary(ew.neg);
export const exp = unary(ew.exp);
export const log = unary(ew.log);
export const sqrt = unary(ew.sqrt);
export const rsqrt = unary(ew.rsqrt);
export const tanh = unary(ew.tanh);
export const sigmoid = unary(ew.sigmoid);
export const erf = unary(ew.erf);
export const sin = unary(ew.sin);
export const cos = unary(ew.cos);
export const reciprocal = (x: Tensor): Tensor => div(1, x);
/** RMSNorm over the last axis (a primitive: see rmsnorm.ts for why).  x: [..., C], weight: [C] */
export const rmsNorm = (x: Tensor, weight: Tensor, eps: number): Tensor => x.builder.bind(rmsNormPrim, [x, weight], { eps });
/** x·σ(x) (a primitive: see silu.ts for why). */
export const silu = (x: Tensor): Tensor => x.builder.bind(siluPrim, [x], {});
export const square = (x: Tensor): Tensor => mul(x, x);

/** op(a) @ op(b), where `ta` / `tb` swap the last two axes of a / b without materialising the transpose. */
export function matmul(a: Tensor, b: Tensor, flags: MatmulParams = {}): Tensor {
  // A half-precision weight widened for this product: widen inside it (core/ops/widen.ts), so no float32 copy outlives it.
  const half = !flags.ta && b.rank === 2 && a.rank >= 2 ? widenedFrom(b) : undefined;
  if (half) return widenedMatmul(a, half.storage, half.from, flags.tb === true);
  const params: MatmulParams = { ...(flags.ta ? { ta: true } : {}), ...(flags.tb ? { tb: true } : {}) };
  return a.builder.bind(matmulPrim, [a, b], params);
}

function normAxes(x: Tensor, axes: number | readonly number[] | undefined, op: string): number[] {
  const list = axes === undefined ? [...x.shape.keys()] : typeof axes === 'number' ? [axes] : axes;
  return [...new Set(list.map((a) => normAxis(a, x.rank, op)))].sort((a, b) => a - b);
}

/** Sum over `axes` (all axes when omitted). */
export function sum(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  const ax = normAxes(x, axes, 'sum');
  if (ax.length === 0) return x;
  return x.builder.bind(reduceSum, [x], { axes: ax, keepdims });
}

export function max(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  return x.builder.bind(reduceMax, [x], { axes: normAxes(x, axes, 'max'), keepdims });
}

export function mean(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  const ax = normAxes(x, axes, 'mean');
  const n = ax.reduce<Dim>((acc, a) => mulDims(acc, x.shape[a]!), 1);
  const inverse = typeof n === 'number' ? scalar(x, 1 / n) : x.builder.bind(misc.constant, [], { dtype: x.dtype, shape: [], value: 1, per: n });
  return mul(sum(x, ax, keepdims), inverse);
}

/** Softmax along `axis` (a primitive: see softmax.ts for why). */
export function softmax(x: Tensor, axis = -1): Tensor {
  return x.builder.bind(softmaxPrim, [x], { axis: normAxis(axis, x.rank, 'softmax') });
}

export function reshape(x: Tensor, shape: Shape): Tensor {
  if (shapeEq(x.shape, shape)) return x;
  return x.builder.bind(lay.reshape, [x], { shape });
}

export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.every((p, i) => p === i)) return x;
  return x.builder.bind(lay.transpose, [x], { perm });
}

export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  if (shapeEq(x.shape, shape)) return x;
  return x.builder.bind(lay.broadcastTo, [x], { shape });
}

/** Sums `ct` down to `shape` over the axes that broadcasting added or stretched (the transpose of broadcasting). */
export function unbroadcast(ct: Tensor, shape: Shape): Tensor {
  if (shapeEq(ct.shape, shape)) return ct;
  const lead = ct.rank - shape.length;
  const axes: number[] = [];
  ct.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  return reshape(sum(ct, axes, true), shape);
}

/** x[..., start:end, ...] along `axis`; bounds may be symbolic (`op.slice(x, 1, 5, 'T+5')`). */
export function slice(x: Tensor, axis: number, start: Dim, end: Dim): Tensor {
  const a = normAxis(axis, x.rank, 'slice');
  if (dimEq(start, 0) && dimEq(x.shape[a]!, end)) return x;
  return x.builder.bind(lay.slice, [x], { axis: a, start: normDim(start), end: normDim(end) });
}

/** Zeros before and after `x` along `axis` (amounts may be symbolic). */
export function pad(x: Tensor, axis: number, before: Dim, after: Dim): Tensor {
  if (dimEq(before, 0) && dimEq(after, 0)) return x;
  return x.builder.bind(lay.pad, [x], { axis: normAxis(axis, x.rank, 'pad'), before: normDim(before), after: normDim(after) });
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 1) return xs[0]!;
  return xs[0]!.builder.bind(lay.concat, xs, { axis: normAxis(axis, xs[0]!.rank, 'concat') });
}

export function gather(table: Tensor, indices: Tensor): Tensor {
  // Rows of a widened half-precision table: gather the stored rows, then widen only those.
  const half = widenedFrom(table);
  if (half) return widen(table.builder.bind(idx.gather, [half.storage, indices], {}), half.from);
  return table.builder.bind(idx.gather, [table, indices], {});
}

export function scatterAddRows(base: Tensor, indices: Tensor, updates: Tensor): Tensor {
  return base.builder.bind(idx.scatterAddRows, [base, indices, updates], {});
}

export function takeAlongAxis(x: Tensor, indices: Tensor, axis: number): Tensor {
  return x.builder.bind(idx.takeAlongAxis, [x, indices], { axis: normAxis(axis, x.rank, 'takeAlongAxis') });
}

export function scatterAddAlongAxis(base: Tensor, indices: Tensor, updates: Tensor, axis: number): Tensor {
  return base.builder.bind(idx.scatterAddAlongAxis, [base, indices, updates], { axis: normAxis(axis, base.rank, 'scatterAddAlongAxis') });
}

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  return x.builder.bind(misc.cast, [x], { dtype });
}

export function stopGradient(x: Tensor): Tensor {
  return x.builder.bind(misc.stopGradient, [x], {});
}

/** A constant of the given shape in the graph of `like`: one value filled, or full row-major data. */
export function constant(like: Tensor, value: number | TypedArray, shape: Shape, dtype: DType = like.dtype): Tensor {
  return like.builder.bind(misc.constant, [], { dtype, shape, value });
}

export function full(like: Tensor, shape: Shape, value: number, dtype: DType = like.dtype): Tensor {
  return constant(like, value, shape, dtype);
}

export function zerosLike(x: Tensor): Tensor {
  return constant(x, 0, x.shape);
}

export function onesLike(x: Tensor): Tensor {
  return constant(x, 1, x.shape);
}

/** Index along `axis` broadcast over `shape` (e.g. positions 0..T-1). */
export function iota(like: Tensor, shape: Shape, axis: number, dtype: DType = 'int64'): Tensor {
  return like.builder.bind(misc.iota, [], { dtype, shape, axis: normAxis(axis, shape.length, 'iota') });
}

/** Half-precision storage as float32, inside the graph (core/ops/widen.ts). */
export { widen, widenedMatmul, type HalfFormat };
