/**
 * Typed GGUF metadata values. llama.cpp checks a key's stored type against the type it reads (a uint32 key written
 * as uint64 is refused), so every value carries its GGUF type explicitly rather than being inferred from a JS number.
 */
import { ValueType } from './format.ts';

export type GgufScalar =
  | { readonly type: 'uint32'; readonly value: number }
  | { readonly type: 'int32'; readonly value: number }
  | { readonly type: 'uint64'; readonly value: bigint }
  | { readonly type: 'float32'; readonly value: number }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string };

export type GgufArray =
  | { readonly type: 'array'; readonly of: 'string'; readonly value: readonly string[] }
  | { readonly type: 'array'; readonly of: 'float32'; readonly value: ArrayLike<number> }
  | { readonly type: 'array'; readonly of: 'int32'; readonly value: ArrayLike<number> }
  | { readonly type: 'array'; readonly of: 'uint32'; readonly value: ArrayLike<number> };

export type GgufValue = GgufScalar | GgufArray;

/** Ordered metadata: llama.cpp does not care about order, but a stable order makes files reproducible. */
export type GgufMetadata = Map<string, GgufValue>;

export const u32 = (value: number): GgufValue => ({ type: 'uint32', value });
export const i32 = (value: number): GgufValue => ({ type: 'int32', value });
export const f32 = (value: number): GgufValue => ({ type: 'float32', value });
export const bool = (value: boolean): GgufValue => ({ type: 'bool', value });
export const str = (value: string): GgufValue => ({ type: 'string', value });
export const strings = (value: readonly string[]): GgufValue => ({ type: 'array', of: 'string', value });
export const f32s = (value: ArrayLike<number>): GgufValue => ({ type: 'array', of: 'float32', value });
export const i32s = (value: ArrayLike<number>): GgufValue => ({ type: 'array', of: 'int32', value });

export const typeId = {
  uint32: ValueType.UINT32, int32: ValueType.INT32, uint64: ValueType.UINT64, float32: ValueType.FLOAT32,
  bool: ValueType.BOOL, string: ValueType.STRING, array: ValueType.ARRAY,
} as const;
