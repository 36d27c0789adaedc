/**
 * Input views: a compiled step may ask for one of its inputs a second time in another shape (`OnnxValueInfo.viewOf`).
 * The embedding gradient's ScatterND wants the token ids as int64 [B, T, 1], and onnxruntime-web's WebGPU provider
 * has no int64 Reshape or Unsqueeze: a node doing it on the device would run on the CPU, with copies both ways. On
 * the host the view is the same buffer with other dims. `compile()`'s executables feed views themselves; code that
 * runs a `CompiledStep` on a runner directly calls `withInputViews` first. A view may also be of another dtype (the
 * ordered embedding gradient compares token ids as float32): then it is converted, not shared.
 */
import { sizeOf, type HostTensor } from '../ir/host.ts';
import type { OnnxValueInfo } from './model.ts';

/** `feeds` plus each view the step declares that the feeds lack, sharing its source's data. */
export function withInputViews(
  inputs: readonly OnnxValueInfo[],
  feeds: Readonly<Record<string, HostTensor>>,
): Readonly<Record<string, HostTensor>> {
  let out: Record<string, HostTensor> | undefined;
  for (const v of inputs) {
    if (v.viewOf === undefined || feeds[v.name]) continue;
    const source = feeds[v.viewOf];
    if (!source) continue; // reported as the source's absence
    if (source.data.length !== sizeOf(v.dims)) {
      throw new Error(`input '${v.viewOf}' has ${source.data.length} elements; its view '${v.name}' needs [${v.dims}]`);
    }
    out ??= { ...feeds };
    out[v.name] = v.dtype === source.dtype ? { dtype: source.dtype, shape: v.dims, data: source.data } : converted(v, source);
  }
  return out ?? feeds;
}

/** A view in another dtype: only integer ids as float32 (exact below 2^24), for comparisons on a GPU. */
function converted(v: OnnxValueInfo, source: HostTensor): HostTensor {
  if (v.dtype !== 'float32' || !(source.data instanceof BigInt64Array || source.data instanceof Int32Array)) {
    throw new Error(`input view '${v.name}': no ${source.dtype} -> ${v.dtype} conversion (only integer ids to float32)`);
  }
  const data = new Float32Array(source.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Number(source.data[i]);
  return { dtype: 'float32', shape: v.dims, data };
}

/** The inputs a caller feeds itself: every one but the views. */
export const fedInputs = (inputs: readonly OnnxValueInfo[]): OnnxValueInfo[] => inputs.filter((i) => i.viewOf === undefined);
