/**
 * Elementwise primitives. Binary ones broadcast like NumPy/ONNX; derivative rules reduce cotangents back to each
 * input's shape with `unbroadcast`.
 */
import type { Eqn, Tensor, TensorType } from '../ir/graph.ts';
import { definePrimitive, type LowerCtx, type Primitive } from '../ir/primitive.ts';
import { broadcastShapes, formatShape } from '../ir/shape.ts';
import * as op from './api.ts';
import { requireArity, requireFloat, requireSameDType, streamingCost } from './util.ts';

type NoParams = Record<string, never>;

function inferBinary(types: readonly TensorType[]): TensorType {
  requireArity(types, 2);
  const dtype = requireSameDType(types);
  const shape = broadcastShapes(types[0]!.shape, types[1]!.shape);
  if (!shape) throw new Error(`shapes ${formatShape(types[0]!.shape)} and ${formatShape(types[1]!.shape)} do not broadcast`);
  return { dtype, shape };
}

function simpleLower(onnxOp: string) {
  return (ctx: LowerCtx) => ctx.node(onnxOp, ctx.inputs, [ctx.out]);
}

interface BinaryRules {
  name: string;
  onnx: string;
  flops: number;
  /** Integer operands are allowed too (index arithmetic); derivatives only ever flow through float ones. */
  ints?: boolean;
  /** A lowering other than the single `onnx` node. */
  lower?: (ctx: LowerCtx) => void;
  /** Tangent of the output given the input tangents (null = zero), already broadcast-safe. */
  jvp(a: Tensor, b: Tensor, ta: Tensor | null, tb: Tensor | null, out: Tensor): Tensor | null;
  /** Unreduced cotangents for a and b (reduced to the input shapes afterwards). */
  vjp(a: Tensor, b: Tensor, ct: Tensor, out: Tensor, needs: readonly boolean[]): [Tensor | null, Tensor | null];
}

function binary(r: BinaryRules): Primitive<NoParams> {
  return definePrimitive<NoParams>({
    name: r.name,
    infer: (types) => {
      const t = inferBinary(types);
      if (!(r.ints && (t.dtype === 'int64' || t.dtype === 'int32'))) requireFloat(t, 'operands');
      return t;
    },
    lower: r.lower ?? simpleLower(r.onnx),
    jvp: ({ primals: [a, b], tangents: [ta, tb], out }) => r.jvp(a!, b!, ta ?? null, tb ?? null, out),
    vjp: ({ primals: [a, b], ct, out, needs }) => {
      const [ga, gb] = r.vjp(a!, b!, ct, out, needs);
      return [ga && needs[0] ? op.unbroadcast(ga, a!.shape) : null, gb && needs[1] ? op.unbroadcast(gb, b!.shape) : null];
    },
    cost: (eqn) => streamingCost(eqn, r.flops),
  });
}

/** Adds tangents that may be missing; broadcasting handles shape differences. */
function addMaybe(x: Tensor | null, y: Tensor | null): Tensor | null {
  if (x && y) return op.add(x, y);
  return x ?? y;
}

export const add = binary({
  name: 'add', onnx: 'Add', flops: 1, ints: true,
  jvp: (_a, _b, ta, tb, out) => op.broadcastTo(addMaybe(ta, tb)!, out.shape),
  vjp: (_a, _b, ct) => [ct, ct],
});

export const sub = binary({
  name: 'sub', onnx: 'Sub', flops: 1, ints: true,
  jvp: (_a, _b, ta, tb, out) => op.broadcastTo(addMaybe(ta, tb && op.neg(tb))!, out.shape),
  vjp: (_a, _b, ct, _o, needs) => [ct, needs[1] ? op.neg(ct) : null],
});

export const mul = binary({
  name: 'mul', onnx: 'Mul', flops: 1, ints: true,
  jvp: (a, b, ta, tb, out) => op.broadcastTo(addMaybe(ta && op.mul(ta, b), tb && op.mul(a, tb))!, out.shape),
  vjp: (a, b, ct, _o, needs) => [needs[0] ? op.mul(ct, b) : null, needs[1] ? op.mul(ct, a) : null],
});

export const div = binary({
  name: 'div', onnx: 'Div', flops: 1,
  // d(a/b) = da/b - (a/b) db/b
  jvp: (_a, b, ta, tb, out) =>
    op.broadcastTo(addMaybe(ta && op.div(ta, b), tb && op.neg(op.div(op.mul(out, tb), b)))!, out.shape),
  vjp: (_a, b, ct, out, needs) => {
    const ctOverB = op.div(ct, b);
    return [needs[0] ? ctOverB : null, needs[1] ? op.neg(op.mul(ctOverB, out)) : null];
  },
});

export const pow = binary({
  name: 'pow', onnx: 'Pow', flops: 10,
  // d(a^b) = b a^(b-1) da + a^b log(a) db
  jvp: (a, b, ta, tb, out) =>
    op.broadcastTo(
      addMaybe(ta && op.mul(op.mul(b, op.pow(a, op.sub(b, 1))), ta), tb && op.mul(op.mul(out, op.log(a)), tb))!,
      out.shape,
    ),
  vjp: (a, b, ct, out, needs) => [
    needs[0] ? op.mul(ct, op.mul(b, op.pow(a, op.sub(b, 1)))) : null,
    needs[1] ? op.mul(ct, op.mul(out, op.log(a))) : null,
  ],
});

export const maximum = binary({
  name: 'maximum', onnx: 'Max', flops: 1, ints: true,
  // where(a < b, b, a): onnxruntime-web's WebGPU provider has no Max kernel (a Max ran on the CPU, with copies both
  // ways), while Less and Where have float32 and int32 kernels on every provider. Ties pick a, as the derivatives
  // below assume. Unlike onnxruntime's Max, a NaN propagates from a only (callers' b is a constant or a multiple of
  // a) and max(-0, +0) is -0.
  lower: (ctx) => {
    const [a, b] = ctx.inputs as [string, string];
    const aLess = ctx.temp('a_less');
    ctx.node('Less', [a, b], [aLess]);
    ctx.node('Where', [aLess, b, a], [ctx.out]);
  },
  // Ties send the whole gradient to `a`.
  jvp: (a, b, ta, tb, out) => {
    const aWins = op.greaterEqual(a, b);
    const zero = op.zerosLike(out);
    return op.where(aWins, ta ? op.broadcastTo(ta, out.shape) : zero, tb ? op.broadcastTo(tb, out.shape) : zero);
  },
  vjp: (a, b, ct, _o, needs) => {
    const aWins = op.greaterEqual(a, b);
    const zero = op.zerosLike(ct);
    return [needs[0] ? op.where(aWins, ct, zero) : null, needs[1] ? op.where(aWins, zero, ct) : null];
  },
});

/** Comparisons: boolean output, no derivative. */
function comparison(name: string, onnx: string): Primitive<NoParams> {
  return definePrimitive<NoParams>({
    name,
    infer: (types) => ({ dtype: 'bool', shape: inferBinary(types).shape }),
    lower: simpleLower(onnx),
    jvp: () => null,
    vjp: () => [null, null],
    cost: (eqn) => streamingCost(eqn, 1),
  });
}

export const less = comparison('less', 'Less');
export const lessEqual = comparison('less_equal', 'LessOrEqual');
export const equal = comparison('equal', 'Equal');

/** where(cond, a, b): a where cond is true, else b. */
export const where = definePrimitive<NoParams>({
  name: 'where',
  infer: (types) => {
    requireArity(types, 3);
    if (types[0]!.dtype !== 'bool') throw new Error(`condition must be bool, got ${types[0]!.dtype}`);
    const ab = inferBinary([types[1]!, types[2]!]);
    if (ab.dtype === 'bool') throw new Error('choosing between bool values is not supported by onnxruntime; combine masks arithmetically');
    const shape = broadcastShapes(types[0]!.shape, ab.shape);
    if (!shape) throw new Error(`condition shape ${formatShape(types[0]!.shape)} does not broadcast with ${formatShape(ab.shape)}`);
    return { dtype: ab.dtype, shape };
  },
  lower: simpleLower('Where'),
  jvp: ({ primals: [c], tangents: [, ta, tb], out }) => {
    const zero = op.zerosLike(out);
    return op.where(c!, ta ? op.broadcastTo(ta, out.shape) : zero, tb ? op.broadcastTo(tb, out.shape) : zero);
  },
  vjp: ({ primals: [c, a, b], ct, needs }) => {
    const zero = op.zerosLike(ct);
    return [
      null,
      needs[1] ? op.unbroadcast(op.where(c!, ct, zero), a!.shape) : null,
      needs[2] ? op.unbroadcast(op.where(c!, zero, ct), b!.shape) : null,
    ];
  },
  cost: (eqn: Eqn) => streamingCost(eqn, 1),
});

interface UnaryRules {
  name: string;
  lower: (ctx: LowerCtx, eqn: Eqn) => void;
  flops: number;
  /** Derivative dy/dx as a tensor, from the input x and the output y. */
  deriv(x: Tensor, y: Tensor): Tensor;
}

function unary(r: UnaryRules): Primitive<NoParams> {
  return definePrimitive<NoParams>({
    name: r.name,
    infer: (types) => {
      requireArity(types, 1);
      requireFloat(types[0]!);
      return types[0]!;
    },
    lower: r.lower,
    jvp: ({ primals: [x], tangents: [t], out }) => op.mul(t!, r.deriv(x!, out)),
    vjp: ({ primals: [x], ct, out }) => [op.mul(ct, r.deriv(x!, out))],
    cost: (eqn) => streamingCost(eqn, r.flops),
  });
}

export const neg = definePrimitive<NoParams>({
  name: 'neg',
  infer: (types) => {
    requireArity(types, 1);
    requireFloat(types[0]!);
    return types[0]!;
  },
  lower: simpleLower('Neg'),
  jvp: ({ tangents: [t] }) => op.neg(t!),
  vjp: ({ ct }) => [op.neg(ct)],
  cost: (eqn) => streamingCost(eqn, 1),
});

export const exp = unary({ name: 'exp', lower: simpleLower('Exp'), flops: 4, deriv: (_x, y) => y });
export const log = unary({ name: 'log', lower: simpleLower('Log'), flops: 4, deriv: (x) => op.reciprocal(x) });
export const sqrt = unary({
  name: 'sqrt', lower: simpleLower('Sqrt'), flops: 4, deriv: (_x, y) => op.div(0.5, y),
});
export const rsqrt = unary({
  name: 'rsqrt',
  lower: (ctx) => {
    const s = ctx.temp('sqrt');
    ctx.node('Sqrt', ctx.inputs, [s]);
    ctx.node('Reciprocal', [s], [ctx.out]);
  },
  flops: 5,
  // d(x^-1/2) = -1/2 x^-3/2 = -1/2 y^3
  deriv: (_x, y) => op.mul(-0.5, op.mul(y, op.mul(y, y))),
});
export const tanh = unary({
  name: 'tanh', lower: simpleLower('Tanh'), flops: 6, deriv: (_x, y) => op.sub(1, op.mul(y, y)),
});
export const sigmoid = unary({
  name: 'sigmoid', lower: simpleLower('Sigmoid'), flops: 5, deriv: (_x, y) => op.mul(y, op.sub(1, y)),
});
export const erf = unary({
  name: 'erf', lower: simpleLower('Erf'), flops: 10,
  deriv: (x) => op.mul(2 / Math.sqrt(Math.PI), op.exp(op.neg(op.mul(x, x)))),
});
export const sin = unary({ name: 'sin', lower: simpleLower('Sin'), flops: 8, deriv: (x) => op.cos(x) });
export const cos = unary({ name: 'cos', lower: simpleLower('Cos'), flops: 8, deriv: (x) => op.neg(op.sin(x)) });
