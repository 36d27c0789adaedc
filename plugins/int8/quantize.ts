/**
 * Symmetric absmax int8 quantisation of a weight (the weight-only 8-bit scheme of LLM.int8()'s storage and of
 * bitsandbytes' `Linear8bitLt` without its outlier decomposition). Plain loops: this runs once, when the model is
 * loaded.
 *
 * Layout of one quantised tensor of `numel` elements (row-major, flattened, zero-padded to whole blocks):
 * - `codes`: int8 [blocks * blockSize], `round(w / scale)` clamped to [-127, 127] (-128 is never used, so the code
 *   range is symmetric and `-w` quantises to `-code`);
 * - `scales`: float32 [blocks], `absmax(block) / 127`, so the block's largest magnitude lands on ±127.
 * Per output row (the default) is the case `blockSize = in`: one scale per row of a [out, in] weight, no padding.
 *
 * Dequantisation: `w[i] = codes[i] * scales[i / blockSize]`, one float32 multiplication, so the TypeScript reference
 * and the compiled graph (Cast + Mul) give the same bits. Error: `|w - ŵ| <= scale / 2` before that multiplication
 * is rounded to float32 (half an ulp of ŵ more), and values on the grid (`k · scale`, |k| <= 127) come back exactly.
 */

/** Sizes of the stored arrays for a tensor of `numel` elements. */
export interface Int8Layout {
  numel: number;
  /** Elements sharing one scale (the row length for per-row quantisation). */
  blockSize: number;
  /** ceil(numel / blockSize): the number of scales. */
  blocks: number;
  /** Length of `codes`: blocks * blockSize (>= numel; the padding codes are 0). */
  paddedNumel: number;
}

export function int8Layout(numel: number, blockSize: number): Int8Layout {
  if (!Number.isInteger(numel) || numel < 1) throw new Error(`int8: cannot quantise a tensor of ${numel} elements`);
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new Error(`int8: blockSize must be a positive integer, got ${blockSize}`);
  const blocks = Math.ceil(numel / blockSize);
  return { numel, blockSize, blocks, paddedNumel: blocks * blockSize };
}

/** The block size of per-row quantisation: the last dimension (the input features of a [out, in] weight). */
export function rowBlockSize(shape: readonly number[]): number {
  return shape.length > 0 ? shape.at(-1)! : 1;
}

/** Bytes one quantised tensor occupies (the two arrays; a few dozen bytes of JS objects aside). */
export function int8Bytes(l: Int8Layout): number {
  return l.paddedNumel + 4 * l.blocks;
}

/** A quantised tensor: int8 codes [paddedNumel], float32 scales [blocks], and the layout. */
export interface Int8Tensor {
  shape: number[];
  layout: Int8Layout;
  codes: Int8Array;
  scales: Float32Array;
}

export interface QuantizeOptions {
  /** Elements per scale; default: one scale per row (the last dimension). */
  blockSize?: number;
}

/** Quantises `data` (row-major, `shape`) to int8 codes with one absmax scale per block. */
export function quantizeInt8(data: ArrayLike<number>, shape: readonly number[], opts: QuantizeOptions = {}): Int8Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  if (data.length !== numel) throw new Error(`int8: data has ${data.length} elements, shape [${shape}] needs ${numel}`);
  const l = int8Layout(numel, opts.blockSize ?? rowBlockSize(shape));
  const codes = new Int8Array(l.paddedNumel);
  const scales = new Float32Array(l.blocks);
  for (let b = 0; b < l.blocks; b++) {
    const start = b * l.blockSize, end = Math.min(start + l.blockSize, numel);
    let m = 0;
    for (let i = start; i < end; i++) {
      const a = Math.abs(data[i]!);
      // `!(a < Infinity)` is also true for NaN: a non-finite weight has no int8 code and would poison its block.
      if (!(a < Infinity)) throw new Error(`int8: element ${i} of the tensor [${shape}] is ${data[i]}; only finite weights can be quantised`);
      if (a > m) m = a;
    }
    const scale = Math.fround(m / 127);
    scales[b] = scale;
    if (scale === 0) continue; // an all-zero block (or one of subnormals below the float32 range of m / 127): codes stay 0
    // |w| <= m and scale >= (m / 127)(1 - 2^-24), so |w / scale| < 127.5: the clamp only guards the arithmetic.
    for (let i = start; i < end; i++) codes[i] = Math.max(-127, Math.min(127, Math.round(data[i]! / scale)));
  }
  return { shape: [...shape], layout: l, codes, scales };
}

/** The float32 tensor the codes stand for, bit-identical to the in-graph dequantisation. */
export function dequantizeInt8(q: Int8Tensor): Float32Array {
  const l = q.layout;
  const out = new Float32Array(l.numel);
  for (let b = 0; b < l.blocks; b++) {
    const scale = q.scales[b]!;
    const start = b * l.blockSize, end = Math.min(start + l.blockSize, l.numel);
    // An int8 times a float32 is exact in float64 (8 + 24 bits), so the store's one rounding is float32 Mul's.
    for (let i = start; i < end; i++) out[i] = q.codes[i]! * scale;
  }
  return out;
}
