/**
 * 4-bit NormalFloat (NF4) block-wise quantisation with double quantisation of the block scales (Dettmers et al.
 * 2023, "QLoRA: Efficient Finetuning of Quantized LLMs"). Plain loops: this runs once, when the model is loaded.
 *
 * Layout of one quantised tensor of `numel` elements (row-major, flattened, zero-padded to whole blocks):
 * - `codes`: uint8 [paddedNumel / 2]; byte j holds element 2j in its high nibble and element 2j+1 in its low
 *   nibble (bitsandbytes' order). A nibble is an index into {@link NF4_CODE}.
 * - per block of `blockSize` elements, the absolute maximum `absmax[b]` (the block's scale);
 * - double quantisation (`dqBlockSize > 0`): the absmax values minus their mean `offset` are quantised to int8,
 *   symmetric, in blocks of `dqBlockSize` with one float32 scale each: `absmax'[k] = q[k] * scale[k / dq] + offset`.
 *   Without it, `absmax` is kept as float32.
 *
 * Dequantisation: `w[i] = NF4_CODE[code[i]] * absmax'[i / blockSize]`, every operation rounded to float32 exactly
 * as the graph does it (so the TypeScript reference and the compiled graph give the same bits).
 */

/**
 * The 16 NF4 values (bitsandbytes' table): quantiles of N(0, 1) normalised to [-1, 1], asymmetric so that 0 is
 * represented exactly (7 negative levels, zero, 8 positive levels).
 */
export const NF4_CODE: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** Index of 0.0 in {@link NF4_CODE} (the code of padding and of all-zero blocks). */
export const NF4_ZERO = 7;

/** Decision thresholds: midpoints between consecutive code values (a value below THRESHOLDS[k] maps to code <= k). */
const THRESHOLDS: Float64Array = Float64Array.from({ length: 15 }, (_, k) => (NF4_CODE[k]! + NF4_CODE[k + 1]!) / 2);

/** The code nearest to x (x in [-1, 1]); a value exactly between two codes goes to the larger one. */
export function nearestCode(x: number): number {
  // A comparison tree over the 15 thresholds (4 comparisons), unrolled: this runs once per weight at load time.
  const t = THRESHOLDS;
  if (x < t[7]!) {
    if (x < t[3]!) {
      if (x < t[1]!) return x < t[0]! ? 0 : 1;
      return x < t[2]! ? 2 : 3;
    }
    if (x < t[5]!) return x < t[4]! ? 4 : 5;
    return x < t[6]! ? 6 : 7;
  }
  if (x < t[11]!) {
    if (x < t[9]!) return x < t[8]! ? 8 : 9;
    return x < t[10]! ? 10 : 11;
  }
  if (x < t[13]!) return x < t[12]! ? 12 : 13;
  return x < t[14]! ? 14 : 15;
}

/** Sizes of the stored arrays for a tensor of `numel` elements. */
export interface Nf4Layout {
  numel: number;
  blockSize: number;
  /** Blocks of the weights: ceil(numel / blockSize). */
  blocks: number;
  /** Bytes of `codes`: blocks * blockSize / 2. */
  codeBytes: number;
  /** Block size of the double quantisation of the absmax values (0: absmax kept as float32). */
  dqBlockSize: number;
  /** Blocks of the double quantisation: ceil(blocks / dqBlockSize) (0 without it). */
  dqBlocks: number;
  /** Length of the int8 absmax codes: dqBlocks * dqBlockSize (0 without double quantisation). */
  absmaxCodes: number;
}

export function nf4Layout(numel: number, blockSize: number, dqBlockSize: number): Nf4Layout {
  if (!Number.isInteger(numel) || numel < 1) throw new Error(`nf4: cannot quantise a tensor of ${numel} elements`);
  if (!Number.isInteger(blockSize) || blockSize < 2 || blockSize % 2) throw new Error(`nf4: blockSize must be an even integer >= 2, got ${blockSize}`);
  if (!Number.isInteger(dqBlockSize) || dqBlockSize < 0) throw new Error(`nf4: dqBlockSize must be a non-negative integer, got ${dqBlockSize}`);
  const blocks = Math.ceil(numel / blockSize);
  const dqBlocks = dqBlockSize > 0 ? Math.ceil(blocks / dqBlockSize) : 0;
  return { numel, blockSize, blocks, codeBytes: (blocks * blockSize) / 2, dqBlockSize, dqBlocks, absmaxCodes: dqBlocks * dqBlockSize };
}

/** Bytes one quantised tensor occupies (the packed arrays; a few dozen bytes of JS objects aside). */
export function nf4Bytes(l: Nf4Layout): number {
  return l.dqBlockSize > 0 ? l.codeBytes + l.absmaxCodes + 4 * l.dqBlocks + 4 : l.codeBytes + 4 * l.blocks;
}

/** A quantised tensor: the packed arrays and their layout. */
export interface Nf4Tensor {
  shape: number[];
  layout: Nf4Layout;
  codes: Uint8Array;
  /** Double quantisation: int8 absmax codes [absmaxCodes], float32 scales [dqBlocks] and the float32 mean offset. */
  absmaxQ?: Int8Array;
  absmaxScale?: Float32Array;
  absmaxOffset?: number;
  /** Without double quantisation: float32 absmax per block [blocks]. */
  absmax?: Float32Array;
}

export interface QuantizeOptions {
  /** Elements per block sharing one absmax (default 64). */
  blockSize?: number;
  /** Block size of the 8-bit double quantisation of the absmax values; 0 keeps them in float32 (default 256). */
  dqBlockSize?: number;
}

/**
 * Scratch space for the block absmax values, reused across calls: quantising a model allocates only the arrays it
 * keeps (freed temporaries would otherwise linger in the allocator and show up in the measured memory).
 */
let absmaxScratch = new Float32Array(0);

/** The absolute maximum of each block, in the shared scratch buffer (valid until the next call). */
function blockAbsmax(data: ArrayLike<number>, l: Nf4Layout): Float32Array {
  if (absmaxScratch.length < l.blocks) absmaxScratch = new Float32Array(Math.max(l.blocks, 2 * absmaxScratch.length));
  const absmax = absmaxScratch.subarray(0, l.blocks);
  for (let b = 0; b < l.blocks; b++) {
    const end = Math.min((b + 1) * l.blockSize, l.numel);
    let m = 0;
    for (let i = b * l.blockSize; i < end; i++) {
      const a = Math.abs(data[i]!);
      if (a > m) m = a;
    }
    absmax[b] = m;
  }
  return absmax;
}

/**
 * Quantises `data` (row-major, `shape`) to NF4. The codes are chosen against the exact block absmax (as
 * bitsandbytes does); the absmax values are then double-quantised.
 */
export function quantizeNf4(data: ArrayLike<number>, shape: readonly number[], opts: QuantizeOptions = {}): Nf4Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  if (data.length !== numel) throw new Error(`nf4: data has ${data.length} elements, shape [${shape}] needs ${numel}`);
  const l = nf4Layout(numel, opts.blockSize ?? 64, opts.dqBlockSize ?? 256);
  const absmax = blockAbsmax(data, l);
  const codes = new Uint8Array(l.codeBytes);
  for (let b = 0; b < l.blocks; b++) {
    const m = absmax[b]!;
    const start = b * l.blockSize, end = start + l.blockSize;
    for (let i = start; i < end; i += 2) {
      const hi = i < numel && m > 0 ? nearestCode(data[i]! / m) : NF4_ZERO;
      const lo = i + 1 < numel && m > 0 ? nearestCode(data[i + 1]! / m) : NF4_ZERO;
      codes[i >> 1] = (hi << 4) | lo;
    }
  }
  const out: Nf4Tensor = { shape: [...shape], layout: l, codes };
  if (l.dqBlockSize === 0) {
    out.absmax = absmax.slice();
    return out;
  }
  // Double quantisation: subtract the mean (the absmax values are all positive, so this centres them and doubles
  // the resolution of the symmetric 8-bit code), then int8 with one scale per dqBlockSize values.
  let sum = 0;
  for (let b = 0; b < l.blocks; b++) sum += absmax[b]!;
  const offset = Math.fround(sum / l.blocks);
  const absmaxQ = new Int8Array(l.absmaxCodes);
  const absmaxScale = new Float32Array(l.dqBlocks);
  for (let j = 0; j < l.dqBlocks; j++) {
    const start = j * l.dqBlockSize, end = Math.min(start + l.dqBlockSize, l.blocks);
    let m = 0;
    for (let k = start; k < end; k++) m = Math.max(m, Math.abs(absmax[k]! - offset));
    const scale = Math.fround(m / 127);
    absmaxScale[j] = scale;
    if (scale === 0) continue; // every value equals the offset: codes stay 0
    for (let k = start; k < end; k++) absmaxQ[k] = Math.max(-127, Math.min(127, Math.round((absmax[k]! - offset) / scale)));
  }
  out.absmaxQ = absmaxQ;
  out.absmaxScale = absmaxScale;
  out.absmaxOffset = offset;
  return out;
}

/** The block scales as the graph reconstructs them (float32 arithmetic, operation by operation). */
export function dequantizeAbsmax(q: Nf4Tensor): Float32Array {
  const l = q.layout;
  if (l.dqBlockSize === 0) return q.absmax!;
  const out = new Float32Array(l.blocks);
  const offset = q.absmaxOffset!;
  for (let k = 0; k < l.blocks; k++) {
    const scale = q.absmaxScale![Math.floor(k / l.dqBlockSize)]!;
    out[k] = Math.fround(Math.fround(q.absmaxQ![k]! * scale) + offset);
  }
  return out;
}

/** The float32 tensor the codes stand for: NF4_CODE[code] * absmax', bit-identical to the in-graph dequantisation. */
export function dequantizeNf4(q: Nf4Tensor): Float32Array {
  const l = q.layout;
  const absmax = dequantizeAbsmax(q);
  const out = new Float32Array(l.numel);
  for (let i = 0; i < l.numel; i++) {
    const byte = q.codes[i >> 1]!;
    const code = i & 1 ? byte & 15 : byte >> 4;
    out[i] = Math.fround(NF4_CODE[code]! * absmax[Math.floor(i / l.blockSize)]!);
  }
  return out;
}
