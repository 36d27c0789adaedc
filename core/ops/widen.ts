/**
 * Half-precision storage widened to float32 inside the graph, right before use (`precision.weights`):
 *
 * - `widen(s; from)` -> float32, same shape. `from: 'float16'`: `s` is float16, one Cast. `from: 'bfloat16'`: `s` is
 *   bfloat16 (one Cast, for runners that take bfloat16 tensors) or uint16 holding bfloat16 bit patterns, which is
 *   what onnxruntime-node gets (it has no bfloat16 tensors, and ONNX opset 18 has no bitcast to shift the bits into
 *   a float32): the patterns are cast to int32 and looked up (GatherElements) in a table of all 65,536 patterns'
 *   float32 values, exact for every pattern (subnormals, infinities and NaN payloads included). The table is one
 *   256 KiB initializer per model, shared by every equation.
 * - `widened_matmul(a, s; from, tb)` -> a @ op(widen(s)), s 2-D: the weight is widened inside the product's lowering,
 *   and the rule for a's cotangent is `widened_matmul` again with the other orientation, which widens a second time.
 *   So the float32 weight is a short-lived temporary of each product, never kept from the forward pass to the
 *   backward pass. The forward orientation (tb, a linear layer) and the backward one widen through different
 *   ONNX nodes, so onnxruntime's common-subexpression elimination cannot merge the two copies into one that lives
 *   across the step.
 *
 * The op API applies both where it sees a widened value: `op.matmul(x, widen(s), { tb })` becomes
 * `widened_matmul(x, s)`, and `op.gather(widen(s), ids)` becomes `widen(gather(s, ids))` (an embedding widens the
 * rows it reads, not the table). The storage is frozen: asking for its derivative is an error.
 */
import type { DType } from '../ir/dtype.ts';
import { bf16ToF32 } from '../io/half.ts';
import type { Tensor, TensorType } from '../ir/graph.ts';
import { definePrimitive, type LowerCtx } from '../ir/primitive.ts';
import { dimEq, formatShape, type Dim } from '../ir/shape.ts';
import { bytesOf, count, requireArity } from './util.ts';

/** The half-precision format a stored tensor holds. */
export type HalfFormat = 'float16' | 'bfloat16';

export interface WidenParams {
  readonly from: HalfFormat;
}

export interface WidenedMatmulParams extends WidenParams {
  /** true: a @ W^T (W [N, K], a linear layer); false: a @ W (W [K, N]). */
  readonly tb: boolean;
}

/** The dtypes that can hold each format: the format itself, or (bfloat16) its bit patterns as uint16. */
export function storageDtypes(from: HalfFormat): readonly DType[] {
  return from === 'float16' ? ['float16'] : ['bfloat16', 'uint16'];
}

function checkStorage(t: TensorType | undefined, from: HalfFormat, what: string): TensorType {
  if (!t || !storageDtypes(from).includes(t.dtype)) {
    throw new Error(`${what} must be ${storageDtypes(from).join(' or ')} (${from} storage), got ${t ? `${t.dtype}${formatShape(t.shape)}` : 'nothing'}`);
  }
  return t;
}

let table: Float32Array | undefined;
/** float32 value of every bfloat16 bit pattern, by pattern. */
function bf16Table(): Float32Array {
  table ??= bf16ToF32(Uint16Array.from({ length: 65536 }, (_, i) => i));
  return table;
}

/**
 * Emits the widening of storage `s` (shape `shape`) into `out`. `variant` 'bwd' reaches the same values through other
 * nodes (a reshape first), so that the backward pass's copy is not merged with the forward one.
 */
function lowerWiden(ctx: LowerCtx, s: string, sType: TensorType, variant: 'fwd' | 'bwd', out: string): void {
  const shape = sType.shape.map(Number);
  const n = count(shape);
  const f32 = 1, i32 = 6; // TensorProto FLOAT, INT32
  if (sType.dtype !== 'uint16') {
    if (variant === 'fwd') return ctx.node('Cast', [s], [out], { to: f32 });
    const flat = ctx.temp('half_flat'), wide = ctx.temp('wide_flat');
    ctx.node('Reshape', [s, ctx.int64s([n])], [flat]);
    ctx.node('Cast', [flat], [wide], { to: f32 });
    return ctx.node('Reshape', [wide, ctx.int64s(shape)], [out]);
  }
  // bfloat16 bits: int32 indices [1, n] into the [1, 65536] table of values.
  const idx = ctx.temp('bf16_idx');
  if (variant === 'fwd') {
    const wideIdx = ctx.temp('bf16_i32');
    ctx.node('Cast', [s], [wideIdx], { to: i32 });
    ctx.node('Reshape', [wideIdx, ctx.int64s([1, n])], [idx]);
  } else {
    const row = ctx.temp('bf16_row');
    ctx.node('Reshape', [s, ctx.int64s([1, n])], [row]);
    ctx.node('Cast', [row], [idx], { to: i32 });
  }
  const values = ctx.temp('bf16_values');
  ctx.node('GatherElements', [ctx.tensor('float32', [1, 65536], bf16Table(), 'bf16-values'), idx], [values], { axis: 1 });
  ctx.node('Reshape', [values, ctx.int64s(shape)], [out]);
}

const frozen = (what: string) => new Error(`${what}: the half-precision storage is frozen (precision.weights); it has no derivative: keep trainable tensors in float32`);

export const widenPrim = definePrimitive<WidenParams>({
  name: 'widen',
  infer: (types, p) => {
    requireArity(types, 1);
    const s = checkStorage(types[0], p.from, 'storage');
    return { dtype: 'float32', shape: s.shape };
  },
  lower: (ctx, eqn) => lowerWiden(ctx, ctx.inputs[0]!, eqn.inputs[0]!, 'fwd', ctx.out),
  jvp: () => { throw frozen('widen'); },
  vjp: ({ needs }) => {
    if (needs[0]) throw frozen('widen');
    return [null];
  },
  cost: (eqn) => ({ flops: count(eqn.out.shape), bytes: bytesOf(eqn.inputs[0]!) + bytesOf(eqn.out) }),
});

export const widenedMatmulPrim = definePrimitive<WidenedMatmulParams>({
  name: 'widened_matmul',
  infer: (types, p) => {
    requireArity(types, 2);
    const [a, s] = [types[0]!, checkStorage(types[1], p.from, 'weight storage')];
    if (a.dtype !== 'float32') throw new Error(`a must be float32 (the weight is widened to float32), got ${a.dtype}`);
    if (s.shape.length !== 2 || a.shape.length < 2) throw new Error(`a [..., K] (rank >= 2) and a 2-D weight expected, got ${formatShape(a.shape)} and ${formatShape(s.shape)}`);
    const [k, n]: [Dim, Dim] = p.tb ? [s.shape[1]!, s.shape[0]!] : [s.shape[0]!, s.shape[1]!];
    if (!dimEq(a.shape.at(-1)!, k)) throw new Error(`a ${formatShape(a.shape)} must end with ${k} (weight ${formatShape(s.shape)}${p.tb ? ' transposed' : ''})`);
    return { dtype: 'float32', shape: [...a.shape.slice(0, -1), n] };
  },
  lower: (ctx, eqn) => {
    const [a, s] = [eqn.inputs[0]!, eqn.inputs[1]!];
    // The weight first, then a's reshape: onnxruntime's execution order (a reverse depth-first walk that visits a
    // node's highest-index input first) then makes the weight just before the Gemm, not at the start of the step.
    const w = ctx.temp('widened');
    lowerWiden(ctx, ctx.inputs[1]!, s, eqn.params.tb ? 'fwd' : 'bwd', w);
    if (a.shape.length === 2) return ctx.node('Gemm', [ctx.inputs[0]!, w], [ctx.out], { transB: eqn.params.tb ? 1 : 0 });
    const rows = ctx.temp('rows'), prod = ctx.temp('gemm');
    ctx.node('Reshape', [ctx.inputs[0]!, ctx.int64s([-1, Number(a.shape.at(-1))])], [rows]);
    ctx.node('Gemm', [rows, w], [prod], { transB: eqn.params.tb ? 1 : 0 });
    ctx.node('Reshape', [prod, ctx.int64s(eqn.out.shape.map(Number))], [ctx.out]);
  },
  jvp: ({ primals: [, s], tangents: [ta, ts], params }) => {
    if (ts) throw frozen('widened_matmul');
    return ta ? widenedMatmul(ta, s!, params.from, params.tb) : null;
  },
  // a's cotangent: the product with the other orientation, which widens the weight again.
  vjp: ({ primals: [, s], ct, params, needs }) => {
    if (needs[1]) throw frozen('widened_matmul');
    return [needs[0] ? widenedMatmul(ct, s!, params.from, !params.tb) : null, null];
  },
  cost: (eqn) => {
    const [a, s] = [eqn.inputs[0]!, eqn.inputs[1]!];
    const w = count(s.shape);
    const m = count(a.shape.slice(0, -1));
    return { flops: 2 * m * w + w, bytes: bytesOf(a) + bytesOf(s) + 8 * w + bytesOf(eqn.out) };
  },
});

/** float32 values of half-precision storage (float16, bfloat16, or bfloat16 bits as uint16). */
export function widen(s: Tensor, from: HalfFormat): Tensor {
  return s.builder.bind(widenPrim, [s], { from });
}

/** a @ W^T (`tb`) or a @ W, W the widened storage `s`, widened inside the product (see the module comment). */
export function widenedMatmul(a: Tensor, s: Tensor, from: HalfFormat, tb: boolean): Tensor {
  return a.builder.bind(widenedMatmulPrim, [a, s], { from, tb });
}

/** The storage and format behind a value produced by `widen`, if it is one. */
export function widenedFrom(t: Tensor): { storage: Tensor; from: HalfFormat } | undefined {
  const eqn = t.builder.producer(t);
  if (eqn?.prim !== widenPrim) return undefined;
  return { storage: t.builder.wrap(eqn.inputs[0]!), from: (eqn.params as WidenParams).from };
}
