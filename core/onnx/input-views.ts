/**
 * Input views: a compiled step may ask for one of its inputs a second time in another shape (`OnnxValueInfo.viewOf`).
 * The embedding gradient's ScatterND wants the token ids as int64 [B, T, 1], and onnxruntime-web's WebGPU provider
 * has no int64 Reshape or Unsqueeze: a node doing it on the device would run on the CPU, with copies both ways. On
 * the host the view is the same buffer with other dims. `compile()`'s executables feed views themselves; code that
 * runs a `CompiledStep` on a runner directly calls `withInputViews` first.
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
    out[v.name] = { dtype: source.dtype, shape: v.dims, data: source.data };
  }
  return out ?? feeds;
}

/** The inputs a caller feeds itself: every one but the views. */
export const fedInputs = (inputs: readonly OnnxValueInfo[]): OnnxValueInfo[] => inputs.filter((i) => i.viewOf === undefined);
