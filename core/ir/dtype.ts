/** Element types the IR knows, with their byte size and ONNX TensorProto code. */
export const DTYPES = {
  float32: { bytes: 4, onnx: 1, float: true },
  float64: { bytes: 8, onnx: 11, float: true },
  float16: { bytes: 2, onnx: 10, float: true },
  bfloat16: { bytes: 2, onnx: 16, float: true },
  int64: { bytes: 8, onnx: 7, float: false },
  int32: { bytes: 4, onnx: 6, float: false },
  int8: { bytes: 1, onnx: 3, float: false },
  /** Raw 16-bit patterns where a runtime cannot take bfloat16 tensors (onnxruntime-node): see core/ops/widen.ts. */
  uint16: { bytes: 2, onnx: 4, float: false },
  uint8: { bytes: 1, onnx: 2, float: false },
  bool: { bytes: 1, onnx: 9, float: false },
} as const;

export type DType = keyof typeof DTYPES;

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(DTYPES, value);
}

/** Throws a readable error for anything that is not a known dtype. */
export function assertDType(value: unknown, where: string): DType {
  if (!isDType(value)) {
    throw new TypeError(
      `${where}: unknown dtype ${JSON.stringify(value)}; expected one of ${Object.keys(DTYPES).join(', ')}`,
    );
  }
  return value;
}

export function isFloat(dtype: DType): boolean {
  return DTYPES[dtype].float;
}

export function byteSize(dtype: DType): number {
  return DTYPES[dtype].bytes;
}

/** Typed arrays used for host-side tensor data, by dtype. float16/bfloat16 travel as raw Uint16 bits. */
export type TypedArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Int8Array
  | Uint8Array
  | Uint16Array;

export function typedArrayFor(dtype: DType, length: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(length);
    case 'float64': return new Float64Array(length);
    case 'float16': case 'bfloat16': case 'uint16': return new Uint16Array(length);
    case 'int64': return new BigInt64Array(length);
    case 'int32': return new Int32Array(length);
    case 'int8': return new Int8Array(length);
    case 'uint8': case 'bool': return new Uint8Array(length);
  }
}
