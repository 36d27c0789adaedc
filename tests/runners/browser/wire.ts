/**
 * Host tensors and compiled steps as JSON-safe values, to cross into a browser page (playwright's evaluate passes
 * JSON): typed-array bytes in base64. Used on both sides, so nothing here needs Node or Bun.
 */
import { DTYPES, typedArrayFor, type DType } from '../../../core/ir/dtype.ts';
import type { HostTensor } from '../../../core/ir/host.ts';
import type { NodeOrigin } from '../../../core/onnx/lower.ts';
import type { OnnxValueInfo } from '../../../core/onnx/model.ts';
import type { CompiledStep } from '../../../runners/types.ts';

export interface WireTensor { dtype: DType; shape: number[]; b64: string }
export interface WireStep { b64: string; inputs: OnnxValueInfo[]; outputs: OnnxValueInfo[]; origins: [string, NodeOrigin][] }

export function bytesToB64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function b64ToBytes(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export const toWire = (t: HostTensor): WireTensor => ({
  dtype: t.dtype, shape: [...t.shape], b64: bytesToB64(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
});

export function fromWire(w: WireTensor): HostTensor {
  const bytes = b64ToBytes(w.b64);
  const data = typedArrayFor(w.dtype, bytes.length / DTYPES[w.dtype].bytes);
  new Uint8Array(data.buffer).set(bytes);
  return { dtype: w.dtype, shape: w.shape, data };
}

export const mapValues = <A, B>(r: Readonly<Record<string, A>>, f: (a: A) => B): Record<string, B> =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k, f(v)]));

export function stepToWire(step: CompiledStep): WireStep {
  if (!('bytes' in step.model)) throw new Error('browser runner: steps with external weight files cannot be sent to a page');
  return { b64: bytesToB64(step.model.bytes), inputs: [...step.inputs], outputs: [...step.outputs], origins: [...step.origins] };
}

export const stepFromWire = (w: WireStep): CompiledStep => ({
  model: { bytes: b64ToBytes(w.b64) }, inputs: w.inputs, outputs: w.outputs, origins: new Map(w.origins),
});
