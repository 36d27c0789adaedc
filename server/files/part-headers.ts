/**
 * The header block of one multipart part: `Content-Disposition: form-data; name="file"; filename="train.jsonl"` and
 * an optional `Content-Type`. Parameter values are tokens or quoted strings (backslash escapes honoured, so a `;`
 * or an escaped quote inside a filename does not end it); `filename*=UTF-8''...` (RFC 5987) wins over `filename`.
 * Browsers and the official OpenAI client percent-encode `"`, CR and LF inside filenames: those stay as sent,
 * since a literal `%22` is just as possible and the filename is only ever shown back, never used as a path.
 */

export class MultipartError extends Error {
  override name = 'MultipartError';
}

export interface PartHeaders {
  /** The form field's name. */
  readonly name: string;
  /** Present on file parts. */
  readonly filename: string | undefined;
  readonly contentType: string | undefined;
}

/** `type; key=value; key="quoted"` → the type and its parameters (keys lower-cased). */
export function parseParams(value: string): { type: string; params: Map<string, string> } {
  const params = new Map<string, string>();
  const semi = value.indexOf(';');
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  let i = semi < 0 ? value.length : semi + 1;
  while (i < value.length) {
    const eq = value.indexOf('=', i);
    if (eq < 0) break; // a trailing `;` or a flag without a value: nothing to keep
    const key = value.slice(i, eq).trim().toLowerCase();
    i = eq + 1;
    while (value[i] === ' ' || value[i] === '\t') i++;
    let v = '';
    if (value[i] === '"') {
      i++;
      while (i < value.length && value[i] !== '"') {
        if (value[i] === '\\' && i + 1 < value.length) i++;
        v += value.charAt(i);
        i++;
      }
      if (i >= value.length) throw new MultipartError(`unterminated quoted value of "${key}" in a part header`);
      i++; // the closing quote
      const next = value.indexOf(';', i);
      i = next < 0 ? value.length : next + 1;
    } else {
      const next = value.indexOf(';', i);
      v = (next < 0 ? value.slice(i) : value.slice(i, next)).trim();
      i = next < 0 ? value.length : next + 1;
    }
    if (key !== '' && !params.has(key)) params.set(key, v);
  }
  return { type, params };
}

/** RFC 5987 `charset'language'percent-encoded`; undefined when it is not UTF-8 or does not decode. */
function extendedValue(v: string): string | undefined {
  const m = /^([^']*)'[^']*'(.*)$/.exec(v);
  if (!m || !/^utf-8$/i.test(m[1] ?? '')) return undefined;
  try {
    return decodeURIComponent(m[2] ?? '');
  } catch {
    return undefined;
  }
}

/** The block between a boundary line and the blank line, CRLF-separated `Name: value` lines. */
export function parsePartHeaders(block: string): PartHeaders {
  const headers = new Map<string, string>();
  for (const line of block.split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MultipartError(`malformed part header line "${line.slice(0, 80)}" (expected "Name: value")`);
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const disposition = headers.get('content-disposition');
  if (disposition === undefined) throw new MultipartError('a part has no Content-Disposition header');
  const { type, params } = parseParams(disposition);
  if (type !== 'form-data') throw new MultipartError(`a part's Content-Disposition is "${type}", expected "form-data"`);
  const name = params.get('name');
  if (name === undefined || name === '') throw new MultipartError('a part\'s Content-Disposition has no name="..."');
  const star = params.get('filename*');
  const filename = (star !== undefined ? extendedValue(star) : undefined) ?? params.get('filename');
  return { name, filename, contentType: headers.get('content-type') };
}
