import type { DType } from '../ir/dtype.ts';
import { byteSize } from '../ir/dtype.ts';
import type { Eqn, TensorType } from '../ir/graph.ts';
import type { Cost } from '../ir/primitive.ts';
import type { Shape } from '../ir/shape.ts';

/** Element count of a concrete shape; cost and lowering only run on graphs whose dims are resolved. */
export function count(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') throw new Error(`shape has unresolved symbolic dim '${d}': compile with dims`);
    n *= d;
  }
  return n;
}

export function bytesOf(t: TensorType): number {
  return count(t.shape) * byteSize(t.dtype);
}

/** Cost of an op that reads its inputs once, writes its output once and does `flopsPerOut` per output element. */
export function streamingCost(eqn: Eqn, flopsPerOut: number): Cost {
  const bytes = eqn.inputs.reduce((s, v) => s + bytesOf(v), 0) + bytesOf(eqn.out);
  return { flops: count(eqn.out.shape) * flopsPerOut, bytes };
}

export function requireSameDType(types: readonly TensorType[]): DType {
  const d = types[0]!.dtype;
  for (const t of types) {
    if (t.dtype !== d) throw new Error(`dtypes differ (${types.map((x) => x.dtype).join(' vs ')}); cast one side first`);
  }
  return d;
}

export function requireFloat(t: TensorType, what = 'input'): void {
  if (!['float32', 'float64', 'float16', 'bfloat16'].includes(t.dtype)) {
    throw new Error(`${what} must be a float tensor, got ${t.dtype}`);
  }
}

export function requireInt(t: TensorType, what = 'indices'): void {
  if (t.dtype !== 'int64' && t.dtype !== 'int32') throw new Error(`${what} must be int64 or int32, got ${t.dtype}`);
}

export function requireArity(types: readonly TensorType[], n: number): void {
  if (types.length !== n) throw new Error(`expects ${n} inputs, got ${types.length}`);
}

/** ONNX's TensorProto data type code of a dtype (Cast's `to`). */
export function castCode(dtype: DType): number {
  return ({ float32: 1, uint8: 2, int8: 3, uint16: 4, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11, bfloat16: 16 } as const)[dtype];
}
