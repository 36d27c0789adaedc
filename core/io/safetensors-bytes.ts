/**
 * A whole safetensors file already in memory (a page's `fetch(...).arrayBuffer()`), read into host tensors. The
 * header gets the file reader's checks (safetensors-header.ts); no file system, so browser pages can use it.
 *
 * ```ts
 * const { tensors } = readSafetensorsBytes(new Uint8Array(await (await fetch('/model.safetensors')).arrayBuffer()));
 * ```
 */
import { typedArrayFor } from '../ir/dtype.ts';
import type { HostTensor } from '../ir/host.ts';
import { sizeOf } from '../ir/host.ts';
import { assertLittleEndian, headerLength, parseHeader } from './safetensors-header.ts';

/** Every tensor of the file in `bytes`, copied out (so `bytes` can be dropped); `where` names it in errors. */
export function readSafetensorsBytes(
  bytes: Uint8Array, where = 'safetensors bytes',
): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  assertLittleEndian();
  const n = headerLength(where, bytes.length, bytes.subarray(0, 8));
  const { entries, metadata } = parseHeader(where, bytes.subarray(8, 8 + n), n, bytes.length);
  const tensors = new Map<string, HostTensor>();
  for (const [name, { info, begin }] of entries) {
    const data = typedArrayFor(info.dtype, sizeOf(info.shape));
    // A copy, not a view: tensor offsets need not be aligned to the element size within the file.
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(bytes.subarray(8 + n + begin, 8 + n + begin + info.byteLength));
    tensors.set(name, { dtype: info.dtype, shape: [...info.shape], data });
  }
  return { tensors, metadata };
}
