/**
 * A streaming multipart/form-data scanner (RFC 7578 over RFC 2046): bytes in, events out (`part` with its headers,
 * `data` chunks of its body, `end`), never more of the body in memory than one input chunk plus a delimiter's length.
 * The consumer pulls events with `for await`, so a slow consumer (a disk write) slows the reading: backpressure
 * comes for free. Delimiters split across chunks are found because the last `delimiter.length - 1` bytes of a body
 * chunk are held back until the next chunk shows whether they start a delimiter.
 */
import { MultipartError, parsePartHeaders, type PartHeaders } from './part-headers.ts';

export { MultipartError, type PartHeaders } from './part-headers.ts';

export type MultipartEvent =
  | { readonly type: 'part'; readonly headers: PartHeaders }
  | { readonly type: 'data'; readonly bytes: Uint8Array }
  | { readonly type: 'end' };

export interface MultipartLimits {
  /** Largest header block of one part (a bigger one is refused rather than buffered). */
  readonly headerBytes?: number;
}

/** RFC 2046: 1 to 70 characters from a restricted set; a quoted value may hold spaces (not as its last one). */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/** The boundary of a `multipart/form-data; boundary=...` content type; undefined when it is not one. */
export function boundaryOf(contentType: string | undefined): string | undefined {
  if (!contentType || !/^\s*multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const m = /;\s*boundary\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(contentType);
  const value = m?.[1]?.replace(/\\(.)/g, '$1') ?? m?.[2];
  return value !== undefined && BOUNDARY.test(value) ? value : undefined;
}

const CR = 13, LF = 10, DASH = 45, SPACE = 32, TAB = 9;
const HEADER_END = Buffer.from('\r\n\r\n');
/** Transport padding (spaces after a boundary) longer than this is garbage, not padding. */
const MAX_PADDING = 256;

type State = 'preamble' | 'boundary' | 'body' | 'done';

/**
 * The events of a multipart body. Throws {@link MultipartError} on a malformed body (a boundary line not ended by
 * CRLF, a part without a name, a header block over the limit, a body that ends before the closing delimiter).
 * Bytes after the closing delimiter (the epilogue) are read and ignored, so the request body is consumed whole.
 */
export async function* multipartEvents(source: AsyncIterable<Uint8Array>, boundary: string, limits: MultipartLimits = {}): AsyncGenerator<MultipartEvent> {
  const headerBytes = limits.headerBytes ?? 16 * 1024;
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  // The first delimiter may open the body without a CRLF before it: a virtual CRLF lets one search find every delimiter.
  let buf: Buffer = Buffer.from('\r\n');
  let state = 'preamble' as State; // `as`: scan() changes it, which the narrowing below cannot see

  /** Everything the buffer allows now; leaves in `buf` what needs more input. */
  function* scan(): Generator<MultipartEvent> {
    for (;;) {
      if (state === 'done') {
        buf = Buffer.alloc(0);
        return;
      }
      if (state === 'preamble' || state === 'body') {
        const at = buf.indexOf(delimiter);
        if (at < 0) {
          // Hold back what could be the start of a delimiter split across chunks.
          const safe = buf.length - (delimiter.length - 1);
          if (safe > 0) {
            if (state === 'body') yield { type: 'data', bytes: buf.subarray(0, safe) };
            buf = buf.subarray(safe);
          }
          return;
        }
        if (state === 'body') {
          if (at > 0) yield { type: 'data', bytes: buf.subarray(0, at) };
          yield { type: 'end' };
        }
        buf = buf.subarray(at + delimiter.length);
        state = 'boundary';
        continue;
      }
      // state 'boundary': just after a delimiter: `--` closes the body, else padding, CRLF, headers, CRLF CRLF.
      if (buf.length < 2) return;
      if (buf[0] === DASH && buf[1] === DASH) {
        state = 'done';
        continue;
      }
      let p = 0;
      while (p < buf.length && (buf[p] === SPACE || buf[p] === TAB)) p++;
      if (p > MAX_PADDING) throw new MultipartError(`the boundary line is followed by ${p} spaces instead of CRLF`);
      if (p + 2 > buf.length) return;
      if (buf[p] !== CR || buf[p + 1] !== LF) throw new MultipartError('a boundary line must end with CRLF (and the boundary must not occur inside a part)');
      // The block is searched from the boundary line's CRLF, so an empty header block (CRLF CRLF at once) is found too.
      const end = buf.indexOf(HEADER_END, p);
      if (end < 0) {
        if (buf.length - p > headerBytes) throw new MultipartError(`a part's headers are over ${headerBytes} bytes`);
        return;
      }
      if (end - p > headerBytes) throw new MultipartError(`a part's headers are over ${headerBytes} bytes`);
      const block = end === p ? '' : buf.toString('utf8', p + 2, end);
      buf = buf.subarray(end + HEADER_END.length);
      state = 'body';
      yield { type: 'part', headers: parsePartHeaders(block) };
    }
  }

  for await (const chunk of source) {
    if (state === 'done') continue; // the epilogue: consumed, ignored
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    // A fresh buffer each time: data events handed out earlier keep pointing at bytes nobody overwrites.
    buf = buf.length === 0 ? bytes : Buffer.concat([buf, bytes]);
    yield* scan();
  }
  if (state !== 'done') {
    throw new MultipartError(state === 'preamble' ? `no part found: the body has no boundary "--${boundary}"` : 'the body ended before the closing boundary (was the upload interrupted?)');
  }
}
