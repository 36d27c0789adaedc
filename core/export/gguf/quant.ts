/**
 * Tensor encodings: float32 as is, float16 (round to nearest even), and ggml's Q8_0 reference quantisation
 * (`quantize_row_q8_0_ref`): per block of 32, d = max|x| / 127, q = round(x / d) (halves away from zero), d stored
 * as float16 while q is computed with the float32 d.
 */
import { f16ToF32, f32ToF16 } from '../../io/half.ts';
import { Q8_0_BLOCK, Q8_0_BLOCK_BYTES, type GgmlTypeName } from './format.ts';

const bytesOf = (a: Float32Array | Uint16Array | Uint8Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export function encodeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % Q8_0_BLOCK !== 0) throw new Error(`Q8_0: ${x.length} values is not a multiple of ${Q8_0_BLOCK}`);
  const blocks = x.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const scale = new Float32Array(1);
  for (let b = 0; b < blocks; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let i = 0; i < Q8_0_BLOCK; i++) amax = Math.max(amax, Math.abs(x[base + i]!));
    scale[0] = amax / 127; // float32 arithmetic, as ggml computes it
    const d = scale[0]!;
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const at = b * Q8_0_BLOCK_BYTES;
    view.setUint16(at, f32ToF16(scale)[0]!, true);
    for (let i = 0; i < Q8_0_BLOCK; i++) {
      const v = Math.fround(x[base + i]! * id);
      view.setInt8(at + 2 + i, Math.sign(v) * Math.round(Math.abs(v))); // roundf: halves away from zero
    }
  }
  return out;
}

/** The inverse of {@link encodeQ8_0} (what llama.cpp computes with), for checking quantisation error. */
export function decodeQ8_0(bytes: Uint8Array): Float32Array {
  const blocks = bytes.length / Q8_0_BLOCK_BYTES;
  const out = new Float32Array(blocks * Q8_0_BLOCK);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < blocks; b++) {
    const d = f16ToF32(Uint16Array.of(view.getUint16(b * Q8_0_BLOCK_BYTES, true)))[0]!;
    for (let i = 0; i < Q8_0_BLOCK; i++) out[b * Q8_0_BLOCK + i] = d * view.getInt8(b * Q8_0_BLOCK_BYTES + 2 + i);
  }
  return out;
}

/** float32 values in `type`'s byte layout. */
export function encodeTensor(values: Float32Array, type: GgmlTypeName): Uint8Array {
  if (type === 'F32') return bytesOf(values);
  if (type === 'F16') return bytesOf(f32ToF16(values));
  return encodeQ8_0(values);
}
