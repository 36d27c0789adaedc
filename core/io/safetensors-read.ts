/**
 * safetensors reader: parses the header up front, then reads each tensor on demand with positional reads
 * straight into the typed array that is returned (the file is never held in memory as a whole). Bytes already in
 * memory (a page's fetch) are read by safetensors-bytes.ts, with the same header checks (safetensors-header.ts).
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { DType } from '../ir/dtype.ts';
import { typedArrayFor } from '../ir/dtype.ts';
import type { HostTensor } from '../ir/host.ts';
import { sizeOf } from '../ir/host.ts';
import { castHostTensor, f32ToBf16Into, f32ToF16Into } from './half.ts';
import { assertLittleEndian, fmtShape, headerLength, parseHeader, type HeaderEntry, type TensorInfo } from './safetensors-header.ts';

export {
  assertLittleEndian, DTYPE_TO_ST, fmtShape, MAX_HEADER_BYTES, ST_TO_DTYPE, type TensorInfo,
} from './safetensors-header.ts';

/** Largest single read/write call; bigger tensors are moved in chunks of this size. */
export const IO_CHUNK_BYTES = 1 << 30;

/** float32 bytes read at a time when a float32 tensor is read as float16 / bfloat16 (so no whole float32 copy exists). */
export const HALF_CONVERSION_CHUNK_BYTES = 4 << 20;

export interface ReadOptions {
  /** Convert to this dtype after reading (e.g. 'float32' decodes F16/BF16, narrows F64, widens integers). */
  readonly as?: DType;
}

/** Anything tensors can be read from by name: one safetensors file or a (sharded) checkpoint. */
export interface TensorSource {
  /** Tensor names in header (or weight_map) order. */
  readonly names: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  /** Header facts for a tensor; throws (with similar names) when there is none by that name. */
  info(name: string): TensorInfo;
  has(name: string): boolean;
  read(name: string, opts?: ReadOptions): Promise<HostTensor>;
  close(): Promise<void>;
}

/** One open .safetensors file. */
export interface SafetensorsFile extends TensorSource {
  readonly path: string;
}

class StFile implements SafetensorsFile {
  readonly names: readonly string[];
  private closed = false;
  /** Scratch of a float32 read into half precision (readAsHalf). */
  private chunk: Uint32Array | undefined;

  constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly dataStart: number,
    private readonly entries: ReadonlyMap<string, HeaderEntry>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.names = [...entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    return this.entry(name).info;
  }

  async read(name: string, opts?: ReadOptions): Promise<HostTensor> {
    const { info, begin } = this.entry(name);
    if (this.closed) throw new Error(`${this.path}: cannot read tensor "${name}": file is closed`);
    if (info.dtype === 'float32' && (opts?.as === 'float16' || opts?.as === 'bfloat16')) return this.readAsHalf(name, info, begin, opts.as);
    const data = typedArrayFor(info.dtype, sizeOf(info.shape));
    await this.readInto(name, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), begin);
    const t: HostTensor = { dtype: info.dtype, shape: [...info.shape], data };
    return opts?.as === undefined ? t : castHostTensor(t, opts.as, `${this.path}: tensor "${name}"`);
  }

  /** A float32 tensor rounded to half precision a few MiB at a time: its float32 copy never exists whole. */
  private async readAsHalf(name: string, info: TensorInfo, begin: number, as: 'float16' | 'bfloat16'): Promise<HostTensor> {
    const n = sizeOf(info.shape);
    const out = new Uint16Array(n);
    // One buffer per open file, reused by every read: the conversion leaves no garbage behind.
    this.chunk ??= new Uint32Array(HALF_CONVERSION_CHUNK_BYTES / 4);
    const round = as === 'float16' ? f32ToF16Into : f32ToBf16Into;
    for (let i = 0; i < n; i += this.chunk.length) {
      const part = this.chunk.subarray(0, Math.min(this.chunk.length, n - i)); // float32 bit patterns
      await this.readInto(name, new Uint8Array(part.buffer, 0, part.byteLength), begin + 4 * i, 4 * i, 4 * n);
      round(part, out.subarray(i, i + part.length));
    }
    return { dtype: as, shape: [...info.shape], data: out };
  }

  /** Fills `bytes` from the data buffer at `begin`; `offset` and `total` place the bytes in the tensor, for errors. */
  private async readInto(name: string, bytes: Uint8Array, begin: number, offset = 0, total = bytes.length): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const want = Math.min(bytes.length - done, IO_CHUNK_BYTES);
      const { bytesRead } = await this.fh.read(bytes, done, want, this.dataStart + begin + done);
      if (bytesRead === 0) {
        throw new Error(
          `${this.path}: unexpected end of file reading tensor "${name}": expected ${total} bytes, ` +
            `found ${offset + done} (was the file truncated after it was opened?)`,
        );
      }
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }

  private entry(name: string): HeaderEntry {
    const e = this.entries.get(name);
    if (e === undefined) throw new Error(missingMessage(this.path, name, this.names));
    return e;
  }
}

/** Message for a tensor name that is not there, listing a few similar names. */
export function missingMessage(where: string, name: string, names: readonly string[]): string {
  if (names.length === 0) return `${where}: no tensor named "${name}" (the file has no tensors)`;
  const near = similarNames(name, names, 5).map((n) => JSON.stringify(n)).join(', ');
  return `${where}: no tensor named "${name}" among ${names.length} tensors; similar names: ${near}`;
}

function similarNames(name: string, names: readonly string[], k: number): string[] {
  return names
    .map((n) => ({ n, d: editDistance(name, n) }))
    .sort((a, b) => a.d - b.d || (a.n < b.n ? -1 : 1))
    .slice(0, k)
    .map((x) => x.n);
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min(sub, prev[j]! + 1, cur[j - 1]! + 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

async function readExactly(fh: FileHandle, length: number, position: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/** Opens a .safetensors file and validates its header; tensor bytes are read later, on demand, by `read`. */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  assertLittleEndian();
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const n = headerLength(path, size, size < 8 ? new Uint8Array(0) : await readExactly(fh, 8, 0));
    const { entries, metadata } = parseHeader(path, await readExactly(fh, n, 8), n, size);
    return new StFile(path, fh, 8 + n, entries, metadata);
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Throws `"<file>: tensor <name> has shape [a,b], expected [c,d]"` unless the shapes match; returns the info. */
export function checkShape(file: TensorSource, name: string, expectedShape: readonly number[]): TensorInfo {
  const info = file.info(name);
  if (info.shape.length !== expectedShape.length || info.shape.some((d, i) => d !== expectedShape[i])) {
    throw new Error(`${info.file}: tensor ${name} has shape ${fmtShape(info.shape)}, expected ${fmtShape(expectedShape)}`);
  }
  return info;
}
