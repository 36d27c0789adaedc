/**
 * safetensors writer: tensors sorted by name, header JSON space-padded to a multiple of 8 bytes,
 * written tensor by tensor to a temporary file that is renamed over the target once complete.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { DTYPES, isDType, typedArrayFor, type TypedArray } from '../ir/dtype.ts';
import type { HostTensor } from '../ir/host.ts';
import { sizeOf } from '../ir/host.ts';
import { assertLittleEndian, DTYPE_TO_ST, fmtShape, IO_CHUNK_BYTES } from './safetensors-read.ts';

/** Tensors to write, by name. */
export type TensorMap = Readonly<Record<string, HostTensor>> | ReadonlyMap<string, HostTensor>;

interface Layout {
  /** 8-byte length followed by the padded JSON header. */
  readonly head: Uint8Array;
  readonly tensors: readonly HostTensor[];
  readonly dataBytes: number;
}

function bytesOf(data: TypedArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function checkTensor(name: string, t: HostTensor): void {
  const where = `safetensors: tensor "${name}"`;
  if (name === '__metadata__') throw new Error(`${where}: the name "__metadata__" is reserved`);
  if (!isDType(t.dtype)) throw new Error(`${where}: unknown dtype ${JSON.stringify(t.dtype)}`);
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`${where}: shape must hold non-negative integers, found ${fmtShape(t.shape)}`);
  }
  const want = typedArrayFor(t.dtype, 0).constructor;
  if (t.data.constructor !== want) {
    throw new Error(`${where}: ${t.dtype} data must be a ${want.name}, found ${t.data.constructor.name}`);
  }
  if (t.data.length !== sizeOf(t.shape)) {
    throw new Error(
      `${where}: data has ${t.data.length} elements, expected ${sizeOf(t.shape)} for shape ${fmtShape(t.shape)}`,
    );
  }
}

function isMap(t: TensorMap): t is ReadonlyMap<string, HostTensor> {
  return t instanceof Map;
}

function layout(tensors: TensorMap, metadata?: Readonly<Record<string, string>>): Layout {
  const list: [string, HostTensor][] = isMap(tensors) ? [...tensors.entries()] : Object.entries(tensors);
  list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors: metadata["${k}"] must be a string, found ${typeof v}`);
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const [name, t] of list) {
    checkTensor(name, t);
    const end = offset + t.data.length * DTYPES[t.dtype].bytes;
    const entry = { dtype: DTYPE_TO_ST[t.dtype], shape: t.shape, data_offsets: [offset, end] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const n = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + n).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
  head.set(json, 8);
  return { head, tensors: list.map(([, t]) => t), dataBytes: offset };
}

/** Serialises tensors to an in-memory safetensors image; meant for small tensor sets (tests, adapters). */
export function encodeSafetensors(
  tensors: TensorMap,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array<ArrayBuffer> {
  assertLittleEndian();
  const { head, tensors: list, dataBytes } = layout(tensors, metadata);
  const out = new Uint8Array(head.length + dataBytes);
  out.set(head, 0);
  let pos = head.length;
  for (const t of list) {
    out.set(bytesOf(t.data), pos);
    pos += t.data.byteLength;
  }
  return out;
}

async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < bytes.length) {
    const want = Math.min(bytes.length - done, IO_CHUNK_BYTES);
    const { bytesWritten } = await fh.write(bytes, done, want, position + done);
    done += bytesWritten;
  }
  return position + done;
}

/**
 * Writes tensors to `path` as safetensors, atomically: the bytes go to `path.tmp-<pid>-<random>` one tensor
 * at a time (no whole-file buffer), are fsynced, and the temporary file is then renamed over `path`.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  assertLittleEndian();
  const { head, tensors: list } = layout(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'wx');
  let renamed = false;
  try {
    try {
      let pos = await writeAll(fh, head, 0);
      for (const t of list) pos = await writeAll(fh, bytesOf(t.data), pos);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
  } finally {
    if (!renamed) await rm(tmp, { force: true });
  }
}
