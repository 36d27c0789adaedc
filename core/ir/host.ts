import type { DType, TypedArray } from './dtype.ts';
import { typedArrayFor } from './dtype.ts';

/**
 * A tensor held in host memory: what is fed to and returned by a compiled step, and what weight files hold.
 * `data` is laid out row-major; float16/bfloat16 are raw 16-bit patterns in a Uint16Array.
 */
export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TypedArray;
}

export function hostTensor(dtype: DType, shape: readonly number[], data?: TypedArray | readonly number[]): HostTensor {
  const size = shape.reduce((a, b) => a * b, 1);
  let arr: TypedArray;
  if (data === undefined) arr = typedArrayFor(dtype, size);
  else if (Array.isArray(data)) {
    arr = typedArrayFor(dtype, size);
    if (arr instanceof BigInt64Array) data.forEach((x, i) => { (arr as BigInt64Array)[i] = BigInt(x); });
    else (arr as Exclude<TypedArray, BigInt64Array>).set(data as number[]);
  } else arr = data as TypedArray;
  if (arr.length !== size) {
    throw new RangeError(`tensor data has ${arr.length} elements but shape [${shape.join(',')}] needs ${size}`);
  }
  return { dtype, shape: [...shape], data: arr };
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Reads element i as a JS number whatever the dtype (float16/bfloat16 decoded). */
export function toNumbers(t: HostTensor): number[] {
  const out = new Array<number>(t.data.length);
  for (let i = 0; i < t.data.length; i++) out[i] = Number(t.data[i]);
  if (t.dtype === 'float16' || t.dtype === 'bfloat16') throw new Error('toNumbers: decode half precision first');
  return out;
}
