/**
 * The safetensors header: its length prefix, its JSON and every entry's checks. Shared by the file reader
 * (safetensors-read.ts) and the in-memory one (safetensors-bytes.ts); no I/O here, so a browser bundle can use it.
 */
import type { DType } from '../ir/dtype.ts';
import { byteSize } from '../ir/dtype.ts';
import { sizeOf } from '../ir/host.ts';

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

/** One tensor's header entry: its facts and where its bytes start. */
export interface HeaderEntry {
  readonly info: TensorInfo;
  readonly begin: number; // relative to the data buffer
}

const SUPPORTED = Object.keys(ST_TO_DTYPE).join(', ');

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseEntry(path: string, name: string, raw: unknown, dataBytes: number, fileSize: number): HeaderEntry {
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

/** The header's byte length, from the 8-byte little-endian prefix (`prefix`), checked against the file size. */
export function headerLength(path: string, size: number, prefix: Uint8Array): number {
  if (size < 8) {
    throw new Error(`${path}: file is ${size} bytes, expected at least 8 (the header length) for a safetensors file`);
  }
  const n64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(size - 8)) {
    throw new Error(
      `${path}: header length ${n64} bytes is larger than the file: expected at most ${size - 8} ` +
        `(file size ${size} minus the 8-byte length); not a safetensors file, or truncated`,
    );
  }
  const n = Number(n64);
  if (n > MAX_HEADER_BYTES) throw new Error(`${path}: header length ${n} exceeds the ${MAX_HEADER_BYTES} byte limit`);
  return n;
}

/** Parses and checks the `n`-byte JSON header of a `size`-byte file: every entry, and the metadata. */
export function parseHeader(
  path: string, headerBytes: Uint8Array, n: number, size: number,
): { entries: Map<string, HeaderEntry>; metadata: Record<string, string> } {
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
  const entries = new Map<string, HeaderEntry>();
  for (const [name, raw] of Object.entries(header)) {
    if (name !== '__metadata__') entries.set(name, parseEntry(path, name, raw, dataBytes, size));
  }
  return { entries, metadata: parseMetadata(path, header['__metadata__']) };
}
