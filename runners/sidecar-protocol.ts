/**
 * The sidecar's wire format, shared by the runner (runners/sidecar.ts) and the server (runners/sidecar-server.ts).
 * Web APIs only (no node: imports), so the runner works in Bun, Deno and browsers.
 *
 * Every request carries `Authorization: Bearer <token>`. Routes (all under /v1):
 *
 *   GET    /v1/info               -> JSON { provider, sessions, heldBytes, limits }
 *   POST   /v1/sessions           body: a load frame      -> JSON { session }
 *   POST   /v1/sessions/:id/run   body: a tensor frame    -> a tensor frame (the step's outputs, less the held ones)
 *   GET    /v1/sessions/:id/held/:input                    -> a tensor frame: the output held for that input (in
 *                                                            its store, if it has one)
 *   DELETE /v1/sessions/:id                               -> 204
 *   errors                                                -> JSON { error: { code, message } } with a 4xx/5xx status
 *
 * A tensor frame (a run's feeds, and its outputs):
 *
 *   "TFT1"                 4 bytes, magic
 *   header length H        u32, little-endian
 *   header                 H bytes of UTF-8 JSON: { "tensors": [{ "name", "dtype", "shape": [d0, d1, ...] }, ...] }
 *   payload                each tensor's elements in header order, row-major, little-endian, prod(shape) * bytes(dtype)
 *                          bytes each, nothing between them and nothing after (float16 / bfloat16: raw 16-bit
 *                          patterns; bool: one byte per element)
 *
 * A load frame (a compiled step, sent once):
 *
 *   "TFL1"                 4 bytes, magic
 *   header length H        u32, little-endian
 *   header                 H bytes of UTF-8 JSON: { "inputs": OnnxValueInfo[], "outputs": OnnxValueInfo[],
 *                          "parts": [{ "name": "model.onnx", "bytes": n }, { "name": "weights.bin", "bytes": m }?],
 *                          "feedback": [[output, input], ...]?, "store": id? }: outputs the sidecar keeps and feeds
 *                          to those inputs on the next run that leaves them out, instead of returning them; with a
 *                          store, they are kept in it, shared by every session loaded with that id (an input any of
 *                          them leaves out is served from it), and it is freed with its last session; "inPlace":
 *                          [output, ...]? lists fed-back outputs written over the held tensor they replace
 *   payload                the parts' bytes in order: the ONNX model (resident weights are its initializers), then
 *                          its external data file when it has one
 *
 * Part names come from a fixed list: the server writes them into a folder it creates, so a request never names a path.
 */
import { DTYPES, isDType, typedArrayFor, type DType } from '../core/ir/dtype.ts';
import type { HostTensor } from '../core/ir/host.ts';
import type { OnnxValueInfo } from '../core/onnx/model.ts';

export const TENSOR_MAGIC = 'TFT1';
export const LOAD_MAGIC = 'TFL1';
export const TENSOR_CONTENT_TYPE = 'application/x-tuneforge-tensors';
export const LOAD_CONTENT_TYPE = 'application/x-tuneforge-step';
/** The only part names a load frame may carry, in this order (compile() writes external data as `weights.bin`). */
export const PART_NAMES = ['model.onnx', 'weights.bin'] as const;
export type PartName = (typeof PART_NAMES)[number];
/** Headers are small (names and shapes); a larger one is refused before it is allocated. */
export const MAX_HEADER_BYTES = 16 * 2 ** 20;

// Typed arrays are in the host's byte order; the frames are little-endian, so a big-endian host would misread them.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('the sidecar protocol needs a little-endian host');

/** A frame that cannot be read: wrong magic, bad header, lengths that do not add up. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** More bytes than the receiver accepts. */
export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
  constructor(readonly limit: number) {
    super(`the body is larger than ${limit} bytes`);
  }
}

export interface SidecarErrorBody {
  error: { code: string; message: string };
}

export interface LoadHeader {
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  parts: { name: PartName; bytes: number }[];
  /** `[output, input]` pairs the sidecar holds between runs instead of returning them (runners/holding.ts). */
  feedback?: [string, string][];
  /** The store the session holds in, shared with the other sessions loaded with this id (runners/holding.ts). */
  store?: string;
  /** Fed-back outputs written over the held tensor they replace (runners/types.ts `LoadOptions.inPlace`). */
  inPlace?: string[];
}

/** What a store id may be: a key of the sidecar's table, never a path. */
export const STORE_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

interface TensorHeader {
  tensors: { name: string; dtype: DType; shape: number[] }[];
}

/** What a frame is sent as: bytes held in memory, or a file read as the body goes out. */
export type FramePart = Uint8Array<ArrayBuffer> | Blob;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Magic, header length and header, as the first bytes of a frame. */
function prefix(magic: string, header: unknown): Uint8Array {
  const json = encoder.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length);
  out.set(encoder.encode(magic), 0);
  new DataView(out.buffer).setUint32(4, json.length, true);
  out.set(json, 8);
  return out;
}

const bytesOf = (t: HostTensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/**
 * A tensor frame as Blob parts: the tensors' bytes are referenced, not concatenated into one buffer here.
 * `bytes` is the frame's length.
 */
export function encodeTensors(tensors: Readonly<Record<string, HostTensor>>): { parts: FramePart[]; bytes: number } {
  const entries = Object.entries(tensors);
  const head = prefix(TENSOR_MAGIC, { tensors: entries.map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] })) } satisfies TensorHeader);
  const parts: FramePart[] = [head as Uint8Array<ArrayBuffer>];
  let bytes = head.length;
  for (const [name, t] of entries) {
    const expected = t.shape.reduce((a, b) => a * b, 1) * DTYPES[t.dtype].bytes;
    if (t.data.byteLength !== expected) throw new ProtocolError(`tensor '${name}': ${t.data.byteLength} bytes of data for ${t.dtype}[${t.shape.join(',')}] (${expected} expected)`);
    parts.push(bytesOf(t) as Uint8Array<ArrayBuffer>);
    bytes += t.data.byteLength;
  }
  return { parts, bytes };
}

/** The first bytes of a load frame; the parts' bytes follow it in `header.parts` order. */
export function encodeLoadPrefix(header: LoadHeader): Uint8Array {
  return prefix(LOAD_MAGIC, header);
}

/**
 * The parts one after another as a stream, read as the body goes out (pull: one chunk at a time), never copied into
 * one buffer. For file-backed blobs (Bun drops them when they are parts of a `new Blob([...])`) and large frames.
 */
/** Frames larger than this are streamed from their parts instead of gathered into one Blob (which copies them all). */
export const STREAM_ABOVE_BYTES = 16 * 2 ** 20;

export function streamOf(parts: readonly FramePart[]): ReadableStream<Uint8Array> {
  let i = 0;
  let current: { read(): Promise<{ done: boolean; value?: Uint8Array }> } | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        if (current) {
          const { done, value } = await current.read();
          if (!done && value) return controller.enqueue(value);
          current = undefined;
        }
        const part = parts[i++];
        if (part === undefined) return controller.close();
        if (part instanceof Uint8Array) return controller.enqueue(part);
        current = part.stream().getReader();
      }
    },
  });
}

/**
 * Reads a byte stream in pieces of known length, counting what it has read against a limit, so a receiver never
 * holds more than the piece it asked for plus one chunk.
 */
export class ChunkReader {
  private readonly reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> };
  private chunk: Uint8Array = new Uint8Array(0);
  private offset = 0;
  /** Bytes taken from the stream so far. */
  total = 0;

  constructor(stream: ReadableStream<Uint8Array>, private readonly limit = Number.POSITIVE_INFINITY) {
    this.reader = stream.getReader();
  }

  /** The next chunk's unread bytes (at most `max`), or null at the end of the stream. */
  private async next(max: number): Promise<Uint8Array | null> {
    while (this.offset >= this.chunk.length) {
      const { done, value } = await this.reader.read();
      if (done || !value) return null;
      this.total += value.length;
      if (this.total > this.limit) throw new BodyTooLargeError(this.limit);
      this.chunk = value;
      this.offset = 0;
    }
    const piece = this.chunk.subarray(this.offset, Math.min(this.chunk.length, this.offset + max));
    this.offset += piece.length;
    return piece;
  }

  /** Fills `target` entirely; `what` names it in the error when the stream ends first. */
  async into(target: Uint8Array, what: string): Promise<void> {
    for (let done = 0; done < target.length; ) {
      const piece = await this.next(target.length - done);
      if (!piece) throw new ProtocolError(`the body ended inside ${what} (${done} of ${target.length} bytes)`);
      target.set(piece, done);
      done += piece.length;
    }
  }

  /** Hands the next `n` bytes to `sink` piece by piece (a file being written). */
  async pipe(n: number, sink: (piece: Uint8Array) => Promise<void>, what: string): Promise<void> {
    for (let done = 0; done < n; ) {
      const piece = await this.next(n - done);
      if (!piece) throw new ProtocolError(`the body ended inside ${what} (${done} of ${n} bytes)`);
      await sink(piece);
      done += piece.length;
    }
  }

  /** The stream must be over: bytes after the frame mean sender and receiver disagree about it. */
  async end(): Promise<void> {
    const piece = await this.next(1);
    if (piece) throw new ProtocolError('unexpected bytes after the end of the frame');
  }

  cancel(): void {
    void this.reader.cancel().catch(() => {});
  }
}

async function readHeader(r: ChunkReader, magic: string): Promise<unknown> {
  const fixed = new Uint8Array(8);
  await r.into(fixed, 'the frame prefix');
  const got = String.fromCharCode(...fixed.subarray(0, 4));
  if (got !== magic) throw new ProtocolError(`not a ${magic} frame (it starts with ${JSON.stringify(got)})`);
  const length = new DataView(fixed.buffer).getUint32(4, true);
  if (length > MAX_HEADER_BYTES) throw new ProtocolError(`header of ${length} bytes (at most ${MAX_HEADER_BYTES})`);
  const json = new Uint8Array(length);
  await r.into(json, 'the header');
  try {
    return JSON.parse(decoder.decode(json));
  } catch (e) {
    throw new ProtocolError(`the header is not UTF-8 JSON: ${(e as Error).message}`);
  }
}

const isDims = (v: unknown): v is number[] =>
  Array.isArray(v) && v.length <= 64 && v.every((d) => Number.isSafeInteger(d) && d >= 0);

/** Reads a whole tensor frame: each tensor gets an array of its own (no view shares a buffer with another). */
export async function readTensors(r: ChunkReader): Promise<Record<string, HostTensor>> {
  const header = (await readHeader(r, TENSOR_MAGIC)) as Partial<TensorHeader> | null;
  if (!header || !Array.isArray(header.tensors)) throw new ProtocolError('the header has no "tensors" list');
  const out: Record<string, HostTensor> = Object.create(null);
  for (const [i, t] of header.tensors.entries()) {
    const where = `tensor ${i}`;
    if (typeof t?.name !== 'string' || !t.name) throw new ProtocolError(`${where}: no name`);
    if (!isDType(t.dtype)) throw new ProtocolError(`${where} ('${t.name}'): unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!isDims(t.shape)) throw new ProtocolError(`${where} ('${t.name}'): shape must be a list of non-negative integers`);
    if (t.name in out) throw new ProtocolError(`${where}: '${t.name}' appears twice`);
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(size * DTYPES[t.dtype].bytes)) throw new ProtocolError(`${where} ('${t.name}'): shape too large`);
    const data = typedArrayFor(t.dtype, size);
    await r.into(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), `tensor '${t.name}'`);
    out[t.name] = { dtype: t.dtype, shape: t.shape, data };
  }
  await r.end();
  return out;
}

const isValueInfo = (v: unknown): v is OnnxValueInfo => {
  const o = v as Partial<OnnxValueInfo> | null;
  return typeof o?.name === 'string' && isDType(o.dtype) && isDims(o.dims);
};

/** Reads and checks a load frame's header; the parts' bytes are then read by the caller. */
export async function readLoadHeader(r: ChunkReader): Promise<LoadHeader> {
  const h = (await readHeader(r, LOAD_MAGIC)) as Partial<LoadHeader> | null;
  if (!h || !Array.isArray(h.inputs) || !Array.isArray(h.outputs) || !Array.isArray(h.parts)) {
    throw new ProtocolError('the load header needs "inputs", "outputs" and "parts" lists');
  }
  if (!h.inputs.every(isValueInfo) || !h.outputs.every(isValueInfo)) throw new ProtocolError('"inputs" and "outputs" must be { name, dtype, dims } each');
  const names = h.parts.map((p) => p?.name);
  if (names.length < 1 || names.some((n, i) => n !== PART_NAMES[i])) {
    throw new ProtocolError(`"parts" must be ${PART_NAMES.map((n) => `"${n}"`).join(' then optionally ')} (got ${JSON.stringify(names)}): a request never names files`);
  }
  if (!h.parts.every((p) => Number.isSafeInteger(p.bytes) && p.bytes >= 0)) throw new ProtocolError('each part needs a byte count');
  if (h.feedback !== undefined && !(Array.isArray(h.feedback) && h.feedback.every((p) => Array.isArray(p) && p.length === 2 && p.every((s) => typeof s === 'string')))) {
    throw new ProtocolError('"feedback" must be a list of [output, input] name pairs');
  }
  if (h.store !== undefined && !(typeof h.store === 'string' && STORE_ID.test(h.store))) {
    throw new ProtocolError('"store" must be an id of 1 to 128 letters, digits and . _ : -');
  }
  if (h.inPlace !== undefined && !(Array.isArray(h.inPlace) && h.inPlace.every((o) => typeof o === 'string' && (h.feedback ?? []).some(([out]) => out === o)))) {
    throw new ProtocolError('"inPlace" must list outputs named in "feedback"');
  }
  return {
    inputs: h.inputs, outputs: h.outputs, parts: h.parts, ...(h.feedback?.length ? { feedback: h.feedback } : {}), ...(h.store ? { store: h.store } : {}),
    ...(h.inPlace?.length ? { inPlace: h.inPlace } : {}),
  };
}
