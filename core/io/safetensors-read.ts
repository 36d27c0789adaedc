/**
 * safetensors reader: parses the header up front, then reads each tensor on demand with positional reads
 * straight into the typed array that is returned (the file is never held in memory as a whole).
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { DType } from '../ir/dtype.ts';
import { byteSize, typedArrayFor } from '../ir/dtype.ts';
import type { HostTensor } from '../ir/host.ts';
import { sizeOf } from '../ir/host.ts';
import { castHostTensor, f32ToBf16Into, f32ToF16Into } from './half.ts';

/** safetensors dtype name -> our DType, for the dtypes this project supports. */
export const ST_TO_DTYPE: Readonly<Record<string, DType>> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I8: 'int8',
  U8: 'uint8',
  U16: 'uint16',
  BOOL: 'bool',
};

/** Our DType -> safetensors dtype name. */
export const DTYPE_TO_ST: Readonly<Record<DType, string>> = {
  float64: 'F64',
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  int8: 'I8',
  uint8: 'U8',
  uint16: 'U16',
  bool: 'BOOL',
};

/** The reference implementation refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Largest single read/write call; bigger tensors are moved in chunks of this size. */
export const IO_CHUNK_BYTES = 1 << 30;

/** float32 bytes read at a time when a float32 tensor is read as float16 / bfloat16 (so no whole float32 copy exists). */
export const HALF_CONVERSION_CHUNK_BYTES = 4 << 20;

/** safetensors is little-endian; typed arrays use the host's byte order. */
export function assertLittleEndian(): void {
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) {
    throw new Error('safetensors: big-endian hosts are not supported');
  }
}

/** `[a,b,c]`, as used in error messages. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** What the header says about one tensor. `file` is the path of the file that holds it. */
export interface TensorInfo {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  readonly file: string;
}

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

interface Entry {
  readonly info: TensorInfo;
  readonly begin: number; // relative to the data buffer
}

const SUPPORTED = Object.keys(ST_TO_DTYPE).join(', ');

class StFile implements SafetensorsFile {
  readonly names: readonly string[];
  private closed = false;
  /** Scratch of a float32 read into half precision (readAsHalf). */
  private chunk: Uint32Array | undefined;

  constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly dataStart: number,
    private readonly entries: ReadonlyMap<string, Entry>,
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

  private entry(name: string): Entry {
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

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseEntry(path: string, name: string, raw: unknown, dataBytes: number, fileSize: number): Entry {
  const where = `${path}: tensor "${name}"`;
  if (!isRecord(raw)) throw new Error(`${where}: header entry must be an object, found ${JSON.stringify(raw)}`);
  const st = raw['dtype'];
  const dtype = typeof st === 'string' && Object.hasOwn(ST_TO_DTYPE, st) ? ST_TO_DTYPE[st] : undefined;
  if (dtype === undefined) {
    throw new Error(`${where} has unsupported dtype ${JSON.stringify(st)} (supported: ${SUPPORTED})`);
  }
  const shape = raw['shape'];
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new Error(`${where}: shape must be an array of non-negative integers, found ${JSON.stringify(shape)}`);
  }
  const offs = raw['data_offsets'];
  if (!Array.isArray(offs) || offs.length !== 2 || !isCount(offs[0]) || !isCount(offs[1]) || offs[0] > offs[1]) {
    throw new Error(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, found ${JSON.stringify(offs)}`);
  }
  const [begin, end] = offs as [number, number];
  const expected = sizeOf(shape as number[]) * byteSize(dtype);
  if (end - begin !== expected) {
    throw new Error(
      `${where}: data_offsets [${begin},${end}] span ${end - begin} bytes, expected ${expected} bytes ` +
        `for ${st} ${fmtShape(shape as number[])}`,
    );
  }
  if (end > dataBytes) {
    throw new Error(
      `${path}: truncated file: tensor "${name}" ends at data offset ${end} (byte ${fileSize - dataBytes + end} of ` +
        `the file), but the data buffer has only ${dataBytes} bytes (file size ${fileSize})`,
    );
  }
  return { info: { dtype, shape: shape as number[], byteLength: expected, file: path }, begin };
}

function parseMetadata(path: string, raw: unknown): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (!isRecord(raw)) throw new Error(`${path}: __metadata__ must be an object, found ${JSON.stringify(raw)}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') {
      throw new Error(`${path}: __metadata__["${k}"] must be a string, found ${JSON.stringify(v)}`);
    }
    out[k] = v;
  }
  return out;
}

/** Opens a .safetensors file and validates its header; tensor bytes are read later, on demand, by `read`. */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  assertLittleEndian();
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size < 8) {
      throw new Error(`${path}: file is ${size} bytes, expected at least 8 (the header length) for a safetensors file`);
    }
    const n64 = new DataView((await readExactly(fh, 8, 0)).buffer).getBigUint64(0, true);
    if (n64 > BigInt(size - 8)) {
      throw new Error(
        `${path}: header length ${n64} bytes is larger than the file: expected at most ${size - 8} ` +
          `(file size ${size} minus the 8-byte length); not a safetensors file, or truncated`,
      );
    }
    const n = Number(n64);
    if (n > MAX_HEADER_BYTES) throw new Error(`${path}: header length ${n} exceeds the ${MAX_HEADER_BYTES} byte limit`);
    const headerBytes = await readExactly(fh, n, 8);
    let header: unknown;
    let text = '';
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
      header = JSON.parse(text);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new Error(`${path}: invalid JSON header (${n} bytes, starting ${JSON.stringify(text.slice(0, 40))}): ${msg}`);
    }
    if (!isRecord(header)) throw new Error(`${path}: invalid JSON header: expected an object, found ${text.slice(0, 40)}`);
    const dataBytes = size - 8 - n;
    const entries = new Map<string, Entry>();
    for (const [name, raw] of Object.entries(header)) {
      if (name !== '__metadata__') entries.set(name, parseEntry(path, name, raw, dataBytes, size));
    }
    return new StFile(path, fh, 8 + n, entries, parseMetadata(path, header['__metadata__']));
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
