/**
 * IEEE 754 binary16 (float16) and bfloat16 conversions to and from float32.
 * Half-precision values travel as raw 16-bit patterns in a Uint16Array (see core/ir/dtype.ts).
 * All conversions are exact where the target can represent the value, and round to nearest even otherwise.
 */
import type { DType, TypedArray } from '../ir/dtype.ts';
import { isFloat, typedArrayFor } from '../ir/dtype.ts';
import type { HostTensor } from '../ir/host.ts';

/** float16 bits -> float32 bits for all 65536 patterns; built on first use (256 KiB). */
let f16Table: Uint32Array | undefined;

function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf, nan (payload kept)
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0; // +-0
  // Subnormal: mant * 2^-24. Normalise so the leading one becomes the implicit bit.
  let e = 113; // float32 biased exponent of 2^-14
  let m = mant;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

function table(): Uint32Array {
  if (f16Table === undefined) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) {
    if (abs === 0x7f800000) return sign | 0x7c00; // inf
    return sign | 0x7e00 | ((abs >>> 13) & 0x3ff); // nan: quiet, keep the top payload bits
  }
  if (abs >= 0x477ff000) return sign | 0x7c00; // >= 65520 rounds to inf
  const e = abs >>> 23;
  if (e >= 113) {
    // Normal float16: rebias the exponent, drop 13 mantissa bits with round to nearest even.
    let h = (abs - 0x38000000) >>> 13;
    const rem = abs & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
    return sign | h;
  }
  if (e < 102) return sign; // below 2^-25: rounds to zero
  // Subnormal float16: value * 2^24 = m * 2^(e-126), m the 24-bit significand.
  const m = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - e; // 14..24
  let q = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (q & 1) !== 0)) q++; // may carry into the smallest normal, which is right
  return sign | q;
}

function f32Bits(values: Float32Array | readonly number[]): Uint32Array {
  const f = values instanceof Float32Array ? values : Float32Array.from(values);
  return new Uint32Array(f.buffer, f.byteOffset, f.length);
}

/** Decodes float16 bit patterns to float32 (exact: subnormals, +-0, +-inf and nan payloads preserved). */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const o = new Uint32Array(out.buffer);
  const t = table();
  for (let i = 0; i < bits.length; i++) o[i] = t[bits[i]!]!;
  return out;
}

/** Decodes bfloat16 bit patterns to float32 (exact: bfloat16 is the top half of a float32). */
export function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const o = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) o[i] = bits[i]! << 16;
  return out;
}

/** Encodes float32 values as float16 bits, rounding to nearest even; overflow gives inf, nan stays nan. */
export function f32ToF16(values: Float32Array | readonly number[]): Uint16Array {
  const x = f32Bits(values);
  return f32ToF16Into(x, new Uint16Array(x.length));
}

/** Encodes float32 values as bfloat16 bits, rounding to nearest even; nan stays (quiet) nan. */
export function f32ToBf16(values: Float32Array | readonly number[]): Uint16Array {
  const x = f32Bits(values);
  return f32ToBf16Into(x, new Uint16Array(x.length));
}

/** `f32ToF16` of float32 bit patterns written into `out` (from index 0); returns `out`. Allocates nothing. */
export function f32ToF16Into(x: Uint32Array, out: Uint16Array): Uint16Array {
  for (let i = 0; i < x.length; i++) out[i] = f32BitsToF16Bits(x[i]!);
  return out;
}

/** `f32ToBf16` of float32 bit patterns written into `out` (from index 0); returns `out`. Allocates nothing. */
export function f32ToBf16Into(x: Uint32Array, out: Uint16Array): Uint16Array {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if ((v & 0x7fffffff) > 0x7f800000) out[i] = (v >>> 16) | 0x40;
    else out[i] = (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Decodes one float16 bit pattern to a JS number. */
export function f16BitsToNumber(bits: number): number {
  return f16ToF32(Uint16Array.of(bits))[0]!;
}

/** Decodes one bfloat16 bit pattern to a JS number. */
export function bf16BitsToNumber(bits: number): number {
  return bf16ToF32(Uint16Array.of(bits))[0]!;
}

/** Any tensor's values as float32 (half precision decoded, float64 rounded, integers converted). */
function asF32(t: HostTensor): Float32Array {
  if (t.dtype === 'float16') return f16ToF32(t.data as Uint16Array);
  if (t.dtype === 'bfloat16') return bf16ToF32(t.data as Uint16Array);
  if (t.data instanceof Float32Array) return t.data;
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Number(t.data[i]);
  return out;
}

const INT_RANGE: Partial<Record<DType, readonly [number, number]>> = {
  int32: [-0x80000000, 0x7fffffff],
  int8: [-128, 127],
  uint8: [0, 255],
  uint16: [0, 65535],
};

/**
 * Converts a host tensor to another dtype. Any dtype converts to a float dtype (to float16/bfloat16 via
 * float32, rounding to nearest even); integer/bool convert to integer when every value fits, and to bool as `value != 0`.
 * Float to integer is refused. `where` prefixes error messages. Returns `t` itself when nothing changes.
 */
export function castHostTensor(t: HostTensor, to: DType, where = 'cast'): HostTensor {
  const from = t.dtype;
  if (from === to) return t;
  const shape = [...t.shape];
  if (to === 'float32') return { dtype: to, shape, data: asF32(t) };
  if (to === 'float16') return { dtype: to, shape, data: f32ToF16(asF32(t)) };
  if (to === 'bfloat16') return { dtype: to, shape, data: f32ToBf16(asF32(t)) };
  if (to === 'float64') {
    const src = from === 'float16' || from === 'bfloat16' ? asF32(t) : t.data;
    const out = new Float64Array(src.length);
    for (let i = 0; i < out.length; i++) out[i] = Number(src[i]);
    return { dtype: to, shape, data: out };
  }
  if (isFloat(from)) throw new Error(`${where}: cannot convert ${from} to ${to} (float to integer is not supported)`);
  const n = t.data.length;
  let data: TypedArray;
  if (to === 'int64') {
    const out = new BigInt64Array(n);
    for (let i = 0; i < n; i++) out[i] = BigInt(t.data[i]!);
    data = out;
  } else {
    const [lo, hi] = INT_RANGE[to] ?? [0, 1];
    const out = typedArrayFor(to, n) as Int32Array | Int8Array | Uint8Array;
    for (let i = 0; i < n; i++) {
      const v = t.data[i]!;
      if (to === 'bool') {
        out[i] = v ? 1 : 0;
        continue;
      }
      if (v < lo || v > hi) throw new RangeError(`${where}: value ${v} at index ${i} does not fit ${to}`);
      out[i] = Number(v);
    }
    data = out;
  }
  return { dtype: to, shape, data };
}
