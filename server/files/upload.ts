/**
 * `POST /v1/files`: a multipart body with a `file` part and a `purpose` field, streamed to `<id>.jsonl.part` chunk by
 * chunk (never whole in memory), limited while it streams, renamed into place and recorded only when everything
 * checked out. Any failure (too big, bad purpose, malformed body, client gone, store error) removes what was
 * written: no half file, no row.
 */
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { ApiError } from '../errors.ts';
import { newFileId, nowSeconds } from '../ids.ts';
import type { Service } from '../service.ts';
import type { FileRecord } from '../store/types.ts';
import { boundaryOf, MultipartError, multipartEvents } from './multipart.ts';
import { filePath, partialPath } from './paths.ts';

/** OpenAI's purposes for uploads (the `*_output` / `*-results` ones are the service's own, never uploaded). */
export const PURPOSES = ['fine-tune', 'batch', 'assistants', 'vision', 'user_data', 'evals'] as const;
export type Purpose = (typeof PURPOSES)[number];

/** Room for everything but the file in a body: boundaries, part headers, `purpose` and any extra fields. */
const OVERHEAD_BYTES = 1 << 20;
/** Longest text field kept (`purpose` is a few characters; other fields are read and dropped). */
const FIELD_BYTES = 1024;
/** The client's filename is shown back, so it is bounded like any other stored string. */
const FILENAME_CHARS = 255;

const isPurpose = (p: string): p is Purpose => (PURPOSES as readonly string[]).includes(p);

function purposeOf(raw: string | undefined): Purpose {
  const list = PURPOSES.join(', ');
  if (raw === undefined) throw new ApiError(400, `purpose is required: send a form field "purpose", one of ${list}`, 'purpose', 'missing_purpose');
  if (!isPurpose(raw)) throw new ApiError(400, `purpose must be one of ${list}, got '${raw.slice(0, 64)}'`, 'purpose', 'invalid_purpose');
  return raw;
}

function tooBig(limit: number): ApiError {
  const mib = limit >= 2 ** 20 ? ` = ${(limit / 2 ** 20).toFixed(1)} MiB` : '';
  return new ApiError(413, `file is over this server's upload limit of ${limit} bytes${mib} (limits.uploadBytes in the server config): upload a smaller file or raise the limit`, 'file', 'file_too_large');
}

/** A request body's chunks, counted against `max`; the stream is cancelled when the reading stops early. */
async function* bounded(body: ReadableStream<Uint8Array>, max: number, limit: number): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  let total = 0;
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (e) {
        // The client went away: its request, not the server, failed (and nobody is left to read the answer).
        throw new ApiError(400, `the upload was interrupted: ${(e as Error).message}`, 'file', 'upload_interrupted');
      }
      const { done, value } = chunk;
      if (done) return;
      total += value.byteLength;
      if (total > max) throw tooBig(limit);
      yield value;
    }
  } finally {
    reader.cancel().catch(() => undefined); // a no-op when the body was read to its end
  }
}

/** Writes all of `bytes` (a write may take fewer than it was given). */
async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.byteLength; ) off += (await fh.write(bytes, off, bytes.byteLength - off)).bytesWritten;
}

/** Streams the upload to disk and records it; the returned record is `uploaded` for fine-tune files, else `processed`. */
export async function receiveUpload(svc: Service, req: Request): Promise<FileRecord> {
  const limit = svc.config.limits.uploadBytes;
  const declared = Number(req.headers.get('content-length') ?? 0);
  // Refused before a byte is read when the client says up front that it is too big.
  if (declared > limit + OVERHEAD_BYTES) throw tooBig(limit);
  const boundary = boundaryOf(req.headers.get('content-type') ?? undefined);
  if (boundary === undefined) {
    throw new ApiError(400, `expected Content-Type multipart/form-data with a boundary (got '${req.headers.get('content-type') ?? 'none'}'): send the form fields "file" and "purpose"`, null, 'invalid_content_type');
  }
  if (!req.body) throw new ApiError(400, 'the request has no body: send the form fields "file" and "purpose"', 'file', 'missing_file');

  const id = newFileId();
  const part = partialPath(svc, id);
  const final = filePath(svc, id);
  let fh: FileHandle | undefined;
  let renamed = false;
  try {
    let file: { filename: string; bytes: number } | undefined;
    let purpose: string | undefined;
    let field: { name: string; chunks: Uint8Array[]; size: number } | undefined; // the text field being read
    let inFile = false;
    for await (const ev of multipartEvents(bounded(req.body, limit + OVERHEAD_BYTES, limit), boundary)) {
      if (ev.type === 'part') {
        if (ev.headers.name === 'file') {
          if (file) throw new ApiError(400, 'file: the upload has more than one "file" part; send one file per request', 'file', 'duplicate_file');
          file = { filename: (ev.headers.filename ?? 'file').slice(0, FILENAME_CHARS), bytes: 0 };
          fh = await open(part, 'wx'); // wx: never over anything, even a (random, 143-bit) id clash
          inFile = true;
        } else {
          field = { name: ev.headers.name, chunks: [], size: 0 };
        }
      } else if (ev.type === 'data') {
        if (inFile && file && fh) {
          file.bytes += ev.bytes.byteLength;
          if (file.bytes > limit) throw tooBig(limit);
          await writeAll(fh, ev.bytes);
        } else if (field && field.size <= FIELD_BYTES) {
          field.chunks.push(ev.bytes); // kept only up to FIELD_BYTES: longer fields are cut, not buffered
          field.size += ev.bytes.byteLength;
        }
      } else if (inFile) {
        inFile = false;
        await fh?.close();
        fh = undefined;
      } else if (field) {
        // A bad purpose fails at once when it comes before the file (the official client sends fields in the caller's order).
        if (field.name === 'purpose') purpose = purposeOf(Buffer.concat(field.chunks).toString('utf8', 0, FIELD_BYTES));
        field = undefined;
      }
    }
    if (!file) throw new ApiError(400, 'file is required: send the file as a multipart part named "file"', 'file', 'missing_file');
    const record: FileRecord = {
      id, created_at: nowSeconds(), bytes: file.bytes, filename: file.filename, purpose: purposeOf(purpose),
      status: purpose === 'fine-tune' ? 'uploaded' : 'processed', status_details: null,
    };
    await rename(part, final);
    renamed = true;
    await svc.store.createFile(record);
    return record;
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await rm(part, { force: true });
    if (renamed) await rm(final, { force: true });
    if (e instanceof MultipartError) throw new ApiError(400, `malformed multipart body: ${e.message}`, null, 'invalid_multipart');
    throw e;
  }
}
