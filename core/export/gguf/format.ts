/**
 * GGUF v3 constants (ggml's docs/gguf.md): the magic, metadata value types, the tensor types this writer produces,
 * and `general.file_type` values. Only what tuneforge writes is listed.
 */

/** "GGUF" as bytes 0x47 0x47 0x55 0x46, read as a little-endian uint32. */
export const GGUF_MAGIC = 0x46554747;
export const GGUF_VERSION = 3;
/** Where tensor data starts and how each tensor is padded; the spec's default, written out explicitly. */
export const GGUF_ALIGNMENT = 32;
/** ggml's GGML_QNT_VERSION: required in a file holding quantised tensors. */
export const GGML_QUANT_VERSION = 2;
/** ggml's GGML_MAX_NAME (64) counts the terminating NUL, so names hold at most 63 bytes. */
export const MAX_TENSOR_NAME_BYTES = 63;

/** `gguf_metadata_value_type`. */
export const ValueType = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9,
  UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;
export type ValueTypeId = (typeof ValueType)[keyof typeof ValueType];

/** `ggml_type` ids of the tensor types written here. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlTypeName = keyof typeof GgmlType;

/** Q8_0: blocks of 32 values, each one float16 scale then 32 int8 (34 bytes). */
export const Q8_0_BLOCK = 32;
export const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

/** `general.file_type` (llama_ftype): the type most tensors have. */
export const FileType = { ALL_F32: 0, MOSTLY_F16: 1, MOSTLY_Q8_0: 7 } as const;

/** Bytes of a tensor of `count` elements stored as `type` (count a multiple of 32 for Q8_0). */
export function tensorBytes(type: GgmlTypeName, count: number): number {
  if (type === 'F32') return 4 * count;
  if (type === 'F16') return 2 * count;
  if (count % Q8_0_BLOCK !== 0) throw new Error(`Q8_0 needs a multiple of ${Q8_0_BLOCK} elements, got ${count}`);
  return (count / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
}

export const alignUp = (n: number, alignment = GGUF_ALIGNMENT): number => Math.ceil(n / alignment) * alignment;
