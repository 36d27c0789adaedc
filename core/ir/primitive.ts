import type { TypedArray } from './dtype.ts';
import type { Eqn, Tensor, TensorType } from './graph.ts';

/** ONNX attribute values a lowering may attach to a node. */
export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };

/** What a primitive's lowering can do: name values, emit ONNX nodes, add small constant initializers. */
export interface LowerCtx {
  /** ONNX value name of an equation input / output. */
  readonly inputs: readonly string[];
  readonly out: string;
  node(op: string, inputs: readonly string[], outputs: readonly string[], attrs?: Record<string, AttrValue>): void;
  /** A fresh intermediate value name. */
  temp(hint: string): string;
  /** Name of a 1-D int64 initializer holding `values` (for shapes, axes, pads). */
  int64s(values: readonly number[]): string;
  /** Name of a scalar initializer of the given dtype. */
  scalar(value: number, dtype: TensorType['dtype']): string;
  /**
   * Name of an initializer holding the given data. With a `key`, every call with that key in one model shares one
   * initializer (a lookup table used by many equations is stored once).
   */
  tensor(dtype: TensorType['dtype'], dims: readonly number[], data: TypedArray, key?: string): string;
  /**
   * When equation input `i` is a graph input fed at run time: the name of an extra graph input that the caller feeds
   * with the same values in `dims` (same element count), so no reshape of it runs on the device. Otherwise
   * undefined, and the lowering reshapes it itself. For int64 indices, which onnxruntime-web's WebGPU provider
   * cannot reshape (core/onnx/input-views.ts). With `dtype`, the host also converts it (int64 ids as float32, which
   * onnxruntime-web's WebGPU provider cannot cast either).
   */
  inputView(i: number, dims: readonly number[], dtype?: TensorType['dtype']): string | undefined;
  /**
   * Lower row scatter-adds as products that sum in a fixed order (CompileOptions.orderedScatter, the default) rather
   * than as ScatterND with reduction 'add', which onnxruntime 1.30 gets wrong or unrepeatable where rows share an
   * index: its CPU kernel splits the rows over threads that race (updates lost), its WebGPU and CUDA kernels add in
   * whatever order their threads meet.
   */
  readonly orderedScatter: boolean;
}

export interface JvpArgs<P> {
  readonly primals: readonly Tensor[];
  /** null where the input's tangent is zero. */
  readonly tangents: readonly (Tensor | null)[];
  readonly out: Tensor;
  readonly params: P;
}

export interface VjpArgs<P> {
  readonly primals: readonly Tensor[];
  readonly out: Tensor;
  /** Cotangent of the output. */
  readonly ct: Tensor;
  readonly params: P;
  /** Which inputs need a cotangent: rules skip the others so frozen values cost nothing. */
  readonly needs: readonly boolean[];
}

export interface Cost {
  flops: number;
  /** Bytes read and written. */
  bytes: number;
}

/**
 * A primitive: the only place that knows its shape rule, its ONNX lowering, its derivative rules and its cost.
 * Everything else (softmax, attention, cross-entropy, ...) is composed from primitives.
 */
export interface Primitive<P extends object = object> {
  readonly name: string;
  /** Output type from input types and params. Throws an Error whose message says what is wrong. */
  infer(inputs: readonly TensorType[], params: P): TensorType;
  lower(ctx: LowerCtx, eqn: Eqn<P>): void;
  /** Tangent of the output (null if zero). Called only when some tangent is non-null. */
  jvp(args: JvpArgs<P>): Tensor | null;
  /** Cotangent for each input (null where not needed or zero). */
  vjp(args: VjpArgs<P>): (Tensor | null)[];
  /** FLOPs and bytes moved, for concrete shapes. */
  cost(eqn: Eqn<P>): Cost;
  /** Resolves symbolic dims held in params, for the few primitives whose params hold any (e.g. `1 / T`). */
  specialize?(params: P, dims: Readonly<Record<string, number>>): P;
}

/** Identity helper that keeps the params type of a primitive definition. */
export function definePrimitive<P extends object>(p: Primitive<P>): Primitive<P> {
  return p;
}
