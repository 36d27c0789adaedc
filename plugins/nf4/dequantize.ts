/**
 * NF4 dequantisation inside the compiled graph, as two plugin-local primitives:
 *
 * - `nf4_dequantize(codes, absmax...)` -> W [out, in]: the float weight the codes stand for.
 * - `nf4_matmul(x, codes, absmax...; transpose)` -> x W^T (transpose) or x W, made by core's `dequantizedMatmul`:
 *   the weight is dequantised right before the product and again in the backward pass, so only the packed codes
 *   (0.5 byte per weight) stay resident.
 *
 * The quantised inputs ("qs") are, with double quantisation (`dq > 0`):
 *   codes uint8 [blocks*blockSize/2], absmax codes int8 [dqBlocks*dq], scales float [dqBlocks], offset float [1];
 * without it: codes uint8 [...], absmax float [blocks].
 *
 * Lowering (ONNX, standard domain): the two nibbles of each byte (BitShift, BitwiseAnd), interleaved (Concat) and
 * cast to int32 -> GatherElements from the [1, 16] table of code values -> Reshape [blocks, blockSize] -> Mul by the
 * block scales [blocks, 1] (themselves Cast(int8) * scale + offset) -> Reshape [out, in] -> Gemm with x flattened to
 * 2-D. (A Gather of (high, low) pairs from a 256-row table was ~7% slower: onnxruntime copies each tiny row
 * separately.) The backward pass's copy extracts the nibbles with other operations than the forward one (and casts
 * the scales through int32), so onnxruntime's common-subexpression elimination cannot merge the two dequantisations
 * back into one weight, or its index arrays, kept alive across the step (core/plugin/dequantized-matmul.ts).
 */
import { DTYPES, definePrimitive, dequantizedMatmul, isFloat, op, type Cost, type DType, type Eqn, type LowerCtx, type Shape, type Tensor, type TensorType, type TypedArray } from '../../core/index.ts';
import { NF4_CODE, nf4Layout, type Nf4Layout } from './quantize.ts';

export interface Nf4Params {
  /** Shape of the weight, [out, in] for a linear layer. */
  readonly shape: readonly number[];
  readonly blockSize: number;
  /** Double-quantisation block size; 0 when the absmax values are stored as float. */
  readonly dq: number;
}

const layoutOf = (p: Nf4Params): Nf4Layout => nf4Layout(p.shape.reduce((a, b) => a * b, 1), p.blockSize, p.dq);

function fmtType(t: TensorType): string {
  return `${t.dtype}[${t.shape.join(',')}]`;
}

function expectType(t: TensorType | undefined, dtype: DType | 'float', shape: readonly number[], what: string): void {
  const okDtype = dtype === 'float' ? t !== undefined && isFloat(t.dtype) : t?.dtype === dtype;
  if (!t || !okDtype || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${what} must be ${dtype}[${shape.join(',')}], got ${t ? fmtType(t) : 'nothing'}`);
  }
}

/** Checks the quantised inputs against the params; returns the float dtype of the scales. */
function checkQs(qs: readonly TensorType[], p: Nf4Params): DType {
  const l = layoutOf(p);
  const want = p.dq > 0 ? 4 : 2;
  if (qs.length !== want) throw new Error(`expects ${want} quantised inputs (${p.dq > 0 ? 'codes, absmax codes, scales, offset' : 'codes, absmax'}), got ${qs.length}`);
  expectType(qs[0], 'uint8', [l.codeBytes], 'codes');
  if (p.dq > 0) {
    expectType(qs[1], 'int8', [l.absmaxCodes], 'absmax codes');
    expectType(qs[2], 'float', [l.dqBlocks], 'absmax scales');
    expectType(qs[3], qs[2]!.dtype, [1], 'absmax offset');
    return qs[2]!.dtype;
  }
  expectType(qs[1], 'float', [l.blocks], 'absmax');
  return qs[1]!.dtype;
}

function tableData(dtype: DType): TypedArray {
  return dtype === 'float64' ? Float64Array.from(NF4_CODE) : Float32Array.from(NF4_CODE);
}

/**
 * Emits the dequantisation of the weight and returns the ONNX name of W [out, in]. `variant` 'bwd' uses other
 * (equivalent) casts so that the backward pass's copy is not merged with the forward one.
 */
function lowerDequant(ctx: LowerCtx, q: readonly string[], p: Nf4Params, dtype: DType, variant: 'fwd' | 'bwd'): string {
  const l = layoutOf(p);
  const to = DTYPES[dtype].onnx;
  // Block scales [blocks, 1].
  let absmax: string;
  if (p.dq > 0) {
    let codes = q[1]!;
    if (variant === 'bwd') {
      const wide = ctx.temp('absq_i32');
      ctx.node('Cast', [codes], [wide], { to: DTYPES.int32.onnx });
      codes = wide;
    }
    const f = ctx.temp('absq_f');
    ctx.node('Cast', [codes], [f], { to });
    const grid = ctx.temp('absq_grid');
    ctx.node('Reshape', [f, ctx.int64s([l.dqBlocks, p.dq])], [grid]);
    const scale = ctx.temp('abs_scale');
    ctx.node('Reshape', [q[2]!, ctx.int64s([l.dqBlocks, 1])], [scale]);
    const scaled = ctx.temp('abs_scaled');
    ctx.node('Mul', [grid, scale], [scaled]);
    const shifted = ctx.temp('abs_shifted');
    ctx.node('Add', [scaled, q[3]!], [shifted]);
    let flat = ctx.temp('absmax_flat');
    ctx.node('Reshape', [shifted, ctx.int64s([l.absmaxCodes])], [flat]);
    if (l.absmaxCodes > l.blocks) {
      const cut = ctx.temp('absmax_cut');
      ctx.node('Slice', [flat, ctx.int64s([0]), ctx.int64s([l.blocks]), ctx.int64s([0])], [cut]);
      flat = cut;
    }
    absmax = ctx.temp('absmax');
    ctx.node('Reshape', [flat, ctx.int64s([l.blocks, 1])], [absmax]);
  } else {
    absmax = ctx.temp('absmax');
    ctx.node('Reshape', [q[1]!, ctx.int64s([l.blocks, 1])], [absmax]);
  }
  // Codes -> nibbles (high first) -> code values -> scaled blocks -> W.
  const hi = ctx.temp('nib_hi'), lo = ctx.temp('nib_lo');
  if (variant === 'fwd') {
    ctx.node('BitShift', [q[0]!, ctx.scalar(4, 'uint8')], [hi], { direction: 'RIGHT' });
    ctx.node('BitwiseAnd', [q[0]!, ctx.scalar(15, 'uint8')], [lo]);
  } else {
    // The same nibbles by other operations, so that no node is shared with the forward pass's copy.
    const masked = ctx.temp('nib_hi_masked'), up = ctx.temp('nib_lo_up');
    ctx.node('BitwiseAnd', [q[0]!, ctx.scalar(0xf0, 'uint8')], [masked]);
    ctx.node('BitShift', [masked, ctx.scalar(4, 'uint8')], [hi], { direction: 'RIGHT' });
    ctx.node('BitShift', [q[0]!, ctx.scalar(4, 'uint8')], [up], { direction: 'LEFT' }); // uint8: the high nibble drops out
    ctx.node('BitShift', [up, ctx.scalar(4, 'uint8')], [lo], { direction: 'RIGHT' });
  }
  const hi2 = ctx.temp('nib_hi_col'), lo2 = ctx.temp('nib_lo_col');
  ctx.node('Unsqueeze', [hi, ctx.int64s([1])], [hi2]);
  ctx.node('Unsqueeze', [lo, ctx.int64s([1])], [lo2]);
  const both = ctx.temp('nibbles');
  ctx.node('Concat', [hi2, lo2], [both], { axis: 1 }); // [codeBytes, 2] uint8
  const row = ctx.temp('nibbles_row');
  ctx.node('Reshape', [both, ctx.int64s([1, 2 * l.codeBytes])], [row]);
  const idx = ctx.temp('codes_idx');
  ctx.node('Cast', [row], [idx], { to: DTYPES.int32.onnx });
  // GatherElements over a [1, 16] table: one tight element loop (Gather's per-index copies of tiny rows are ~2x
  // slower here).
  const pairs = ctx.temp('values');
  ctx.node('GatherElements', [ctx.tensor(dtype, [1, 16], tableData(dtype)), idx], [pairs], { axis: 1 });
  const blocks = ctx.temp('blocks');
  ctx.node('Reshape', [pairs, ctx.int64s([l.blocks, p.blockSize])], [blocks]);
  const scaled = ctx.temp('w_blocks');
  ctx.node('Mul', [blocks, absmax], [scaled]);
  const w = ctx.temp('w');
  if (l.blocks * p.blockSize === l.numel) {
    ctx.node('Reshape', [scaled, ctx.int64s([...p.shape])], [w]);
  } else {
    const flat = ctx.temp('w_flat');
    ctx.node('Reshape', [scaled, ctx.int64s([l.blocks * p.blockSize])], [flat]);
    const cut = ctx.temp('w_cut');
    ctx.node('Slice', [flat, ctx.int64s([0]), ctx.int64s([l.numel]), ctx.int64s([0])], [cut]);
    ctx.node('Reshape', [cut, ctx.int64s([...p.shape])], [w]);
  }
  return w;
}

function weightCost(p: Nf4Params): { flops: number; bytes: number } {
  const l = layoutOf(p);
  return { flops: 2 * l.numel, bytes: l.codeBytes + l.absmaxCodes + 4 * (l.dqBlocks || l.blocks) + 4 * l.numel };
}

export const nf4DequantizePrim = definePrimitive<Nf4Params>({
  name: 'nf4_dequantize',
  infer: (types, p) => ({ dtype: checkQs(types, p), shape: [...p.shape] }),
  lower: (ctx, eqn) => {
    const w = lowerDequant(ctx, ctx.inputs, eqn.params, eqn.out.dtype, 'fwd');
    ctx.node('Identity', [w], [ctx.out]);
  },
  // W is linear in the float inputs jointly (absmax; or scales and offset), so its tangent is W at the tangents.
  jvp: ({ primals, tangents, params }) => dequantAt(primals, tangents, params),
  vjp: ({ primals, ct, params, needs }) => [null, ...scaleCotangents(ct, primals, params, needs.slice(1))],
  cost: (eqn: Eqn<Nf4Params>): Cost => weightCost(eqn.params),
});

const nf4Product = dequantizedMatmul<Nf4Params>({
  name: 'nf4',
  params: (p) => ({ shape: [...p.shape], blockSize: p.blockSize, dq: p.dq }),
  check: checkQs,
  lower: lowerDequant,
  weightCost,
  atTangents: dequantAtTangents,
  // One entry per quantised input: none for the codes, then the float inputs after them.
  cotangents: (gw, qs, p, needs) => [null, ...scaleCotangents(gw, qs, p, needs.slice(1))],
});

export const nf4MatmulPrim = nf4Product.prim;

/** Quantised inputs with some float inputs replaced by their tangents (zeros where a tangent is null). */
function dequantAtTangents(qs: readonly Tensor[], tqs: readonly (Tensor | null)[], p: Nf4Params): Tensor[] {
  return qs.map((q, i) => (i === 0 || (p.dq > 0 && i === 1) ? q : (tqs[i] ?? op.zerosLike(q))));
}

function dequantAt(primals: readonly Tensor[], tangents: readonly (Tensor | null)[], p: Nf4Params): Tensor {
  return nf4Dequantize(dequantAtTangents(primals, tangents, p), p);
}

/**
 * Cotangents of the float quantised inputs given dL/dW `gw` [out, in]: W = v * a[block] with v the code values, so
 * dL/da[b] = sum over the block of gw * v; with double quantisation a = q * scale[k / dq] + offset.
 * `needs` covers the quantised inputs after the codes. Returns one entry per input after the codes.
 */
function scaleCotangents(gw: Tensor, qs: readonly Tensor[], p: Nf4Params, needs: readonly boolean[]): (Tensor | null)[] {
  if (!needs.some(Boolean)) return needs.map(() => null);
  const l = layoutOf(p);
  const v = nf4Dequantize([qs[0]!, op.full(gw, [l.blocks], 1)], { ...p, dq: 0 }); // code values, unit scales
  const prod = op.pad(op.reshape(op.mul(gw, v), [l.numel]), 0, 0, l.blocks * p.blockSize - l.numel);
  const ga = op.sum(op.reshape(prod, [l.blocks, p.blockSize]), 1); // [blocks]
  if (p.dq === 0) return [needs[0] ? ga : null];
  const gaGrid = op.reshape(op.pad(ga, 0, 0, l.absmaxCodes - l.blocks), [l.dqBlocks, p.dq]);
  const qf = op.reshape(op.cast(qs[1]!, gw.dtype), [l.dqBlocks, p.dq]);
  const gScale = needs[1] ? op.sum(op.mul(gaGrid, qf), 1) : null; // [dqBlocks]
  const gOffset = needs[2] ? op.reshape(op.sum(ga), [1]) : null;
  return [null, gScale, gOffset];
}

/** The weight [out, in] the quantised inputs stand for. */
export function nf4Dequantize(qs: readonly Tensor[], p: Nf4Params): Tensor {
  return qs[0]!.builder.bind(nf4DequantizePrim, qs, { shape: [...p.shape], blockSize: p.blockSize, dq: p.dq });
}

/** x W^T (`transpose`, a linear layer without bias) or x W, with W dequantised inside the primitive. */
export function nf4Matmul(x: Tensor, qs: readonly Tensor[], p: Nf4Params, transpose = true): Tensor {
  return nf4Product.matmul(x, qs, p, transpose);
}

/** Shapes and dtypes of the graph inputs holding one quantised weight, in primitive order. */
export function quantInputTypes(p: Nf4Params, dtype: DType = 'float32'): { suffix: string; dtype: DType; shape: Shape }[] {
  const l = layoutOf(p);
  if (p.dq > 0) {
    return [
      { suffix: 'nf4_codes', dtype: 'uint8', shape: [l.codeBytes] },
      { suffix: 'nf4_absmax_q', dtype: 'int8', shape: [l.absmaxCodes] },
      { suffix: 'nf4_absmax_scale', dtype, shape: [l.dqBlocks] },
      { suffix: 'nf4_absmax_offset', dtype, shape: [1] },
    ];
  }
  return [
    { suffix: 'nf4_codes', dtype: 'uint8', shape: [l.codeBytes] },
    { suffix: 'nf4_absmax', dtype, shape: [l.blocks] },
  ];
}
