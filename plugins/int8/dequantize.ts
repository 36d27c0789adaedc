/**
 * int8 dequantisation inside the compiled graph, as two plugin-local primitives:
 *
 * - `int8_dequantize(codes, scales)` -> W [out, in]: the float weight the codes stand for.
 * - `int8_matmul(x, codes, scales; transpose)` -> x W^T (transpose) or x W, made by core's `dequantizedMatmul`: the
 *   weight is dequantised right before the product and again in the backward pass, so only the int8 codes (1 byte
 *   per weight) stay resident.
 *
 * Inputs: codes int8 [blocks * blockSize] (flat, zero-padded), scales float [blocks].
 *
 * Lowering (ONNX, standard domain): Cast(int8 -> float) -> Reshape [blocks, blockSize] -> Mul by the scales
 * [blocks, 1] -> (Slice off the padding) -> Reshape [out, in] -> Gemm with x flattened to 2-D. Cast of an int8 is
 * exact and Mul rounds once, so W is bit-identical to `dequantizeInt8`. The backward pass's copy casts the codes
 * through int32 first, so onnxruntime cannot merge it with the forward one (core/plugin/dequantized-matmul.ts).
 */
import { DTYPES, definePrimitive, dequantizedMatmul, isFloat, op, type Cost, type DType, type Eqn, type LowerCtx, type Shape, type Tensor, type TensorType } from '../../core/index.ts';
import { int8Layout, type Int8Layout } from './quantize.ts';

export interface Int8Params {
  /** Shape of the weight, [out, in] for a linear layer. */
  readonly shape: readonly number[];
  /** Elements per scale (the row length for per-row quantisation). */
  readonly blockSize: number;
}

const layoutOf = (p: Int8Params): Int8Layout => int8Layout(p.shape.reduce((a, b) => a * b, 1), p.blockSize);

const fmtType = (t: TensorType) => `${t.dtype}[${t.shape.join(',')}]`;

/** Checks codes and scales against the params; returns the float dtype of the scales. */
function checkQs(qs: readonly TensorType[], p: Int8Params): DType {
  const l = layoutOf(p);
  if (qs.length !== 2) throw new Error(`expects 2 quantised inputs (codes, scales), got ${qs.length}`);
  const [codes, scales] = qs as [TensorType, TensorType];
  if (codes.dtype !== 'int8' || codes.shape.length !== 1 || codes.shape[0] !== l.paddedNumel) throw new Error(`codes must be int8[${l.paddedNumel}], got ${fmtType(codes)}`);
  if (!isFloat(scales.dtype) || scales.shape.length !== 1 || scales.shape[0] !== l.blocks) throw new Error(`scales must be float[${l.blocks}], got ${fmtType(scales)}`);
  return scales.dtype;
}

/**
 * Emits the dequantisation of the weight and returns the ONNX name of W [out, in]. `variant` 'bwd' casts through
 * int32 so that the backward pass's copy is not merged with the forward one.
 */
function lowerDequant(ctx: LowerCtx, q: readonly string[], p: Int8Params, dtype: DType, variant: 'fwd' | 'bwd'): string {
  const l = layoutOf(p);
  let codes = q[0]!;
  if (variant === 'bwd') {
    const wide = ctx.temp('codes_i32');
    ctx.node('Cast', [codes], [wide], { to: DTYPES.int32.onnx });
    codes = wide;
  }
  const f = ctx.temp('codes_f');
  ctx.node('Cast', [codes], [f], { to: DTYPES[dtype].onnx });
  const blocks = ctx.temp('code_blocks');
  ctx.node('Reshape', [f, ctx.int64s([l.blocks, p.blockSize])], [blocks]);
  const scale = ctx.temp('scale_col');
  ctx.node('Reshape', [q[1]!, ctx.int64s([l.blocks, 1])], [scale]);
  const scaled = ctx.temp('w_blocks');
  ctx.node('Mul', [blocks, scale], [scaled]);
  const w = ctx.temp('w');
  if (l.paddedNumel === l.numel) {
    ctx.node('Reshape', [scaled, ctx.int64s([...p.shape])], [w]);
  } else {
    const flat = ctx.temp('w_flat');
    ctx.node('Reshape', [scaled, ctx.int64s([l.paddedNumel])], [flat]);
    const cut = ctx.temp('w_cut');
    ctx.node('Slice', [flat, ctx.int64s([0]), ctx.int64s([l.numel]), ctx.int64s([0])], [cut]);
    ctx.node('Reshape', [cut, ctx.int64s([...p.shape])], [w]);
  }
  return w;
}

function weightCost(p: Int8Params): { flops: number; bytes: number } {
  const l = layoutOf(p);
  return { flops: l.numel, bytes: l.paddedNumel + 4 * l.blocks + 4 * l.numel };
}

export const int8DequantizePrim = definePrimitive<Int8Params>({
  name: 'int8_dequantize',
  infer: (types, p) => ({ dtype: checkQs(types, p), shape: [...p.shape] }),
  lower: (ctx, eqn) => {
    const w = lowerDequant(ctx, ctx.inputs, eqn.params, eqn.out.dtype, 'fwd');
    ctx.node('Identity', [w], [ctx.out]);
  },
  // W is linear in the scales, so its tangent is W with the scales' tangents in their place.
  jvp: ({ primals, tangents, params }) => (tangents[1] ? int8Dequantize([primals[0]!, tangents[1]], params) : null),
  vjp: ({ primals, ct, params, needs }) => [null, needs[1] ? scaleCotangent(ct, primals[0]!, params) : null],
  cost: (eqn: Eqn<Int8Params>): Cost => weightCost(eqn.params),
});

const int8Product = dequantizedMatmul<Int8Params>({
  name: 'int8',
  params: (p) => ({ shape: [...p.shape], blockSize: p.blockSize }),
  check: checkQs,
  lower: lowerDequant,
  weightCost,
  // W is linear in the scales: its tangent is W with the scales' tangents in their place.
  atTangents: ([codes, scales], [, tScales]) => [codes!, tScales ?? op.zerosLike(scales!)],
  cotangents: (gw, [codes], p, needs) => [null, needs[1] ? scaleCotangent(gw, codes!, p) : null],
});

export const int8MatmulPrim = int8Product.prim;

/** dL/dscales [blocks] from dL/dW `gw` [out, in]: W = code * scale[block], so the sum over each block of gw * code. */
function scaleCotangent(gw: Tensor, codes: Tensor, p: Int8Params): Tensor {
  const l = layoutOf(p);
  const g = op.reshape(op.pad(op.reshape(gw, [l.numel]), 0, 0, l.paddedNumel - l.numel), [l.blocks, p.blockSize]);
  const c = op.reshape(op.cast(codes, gw.dtype), [l.blocks, p.blockSize]);
  return op.sum(op.mul(g, c), 1);
}

/** The weight [out, in] that codes and scales stand for. */
export function int8Dequantize(qs: readonly Tensor[], p: Int8Params): Tensor {
  return qs[0]!.builder.bind(int8DequantizePrim, qs, { shape: [...p.shape], blockSize: p.blockSize });
}

/** x W^T (`transpose`, a linear layer without bias) or x W, with W dequantised inside the primitive. */
export function int8Matmul(x: Tensor, qs: readonly Tensor[], p: Int8Params, transpose = true): Tensor {
  return int8Product.matmul(x, qs, p, transpose);
}

/** Shapes and dtypes of the graph inputs holding one quantised weight, in primitive order. */
export function int8InputTypes(p: Int8Params, dtype: DType = 'float32'): { suffix: string; dtype: DType; shape: Shape }[] {
  const l = layoutOf(p);
  return [
    { suffix: 'int8_codes', dtype: 'int8', shape: [l.paddedNumel] },
    { suffix: 'int8_scales', dtype, shape: [l.blocks] },
  ];
}
