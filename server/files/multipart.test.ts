import { describe, expect, test } from 'bun:test';
import { boundaryOf, MultipartError, multipartEvents } from './multipart.ts';
import { parseParams } from './part-headers.ts';

interface Parsed {
  name: string;
  filename: string | undefined;
  contentType: string | undefined;
  body: string;
}

async function* chunked(bytes: Uint8Array, cuts: readonly number[]): AsyncGenerator<Uint8Array> {
  let from = 0;
  for (const at of [...cuts, bytes.length]) {
    yield bytes.slice(from, at); // slice, not subarray: each chunk its own memory, like a socket's
    from = at;
  }
}

async function parse(body: string | Uint8Array, boundary: string, cuts: readonly number[] = [], headerBytes?: number): Promise<Parsed[]> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const parts: Parsed[] = [];
  let cur: { p: Omit<Parsed, 'body'>; data: Buffer[] } | undefined;
  for await (const ev of multipartEvents(chunked(bytes, cuts), boundary, headerBytes ? { headerBytes } : {})) {
    if (ev.type === 'part') cur = { p: { ...ev.headers }, data: [] };
    else if (ev.type === 'data') cur!.data.push(Buffer.from(ev.bytes));
    else parts.push({ ...cur!.p, body: Buffer.concat(cur!.data).toString('latin1') });
  }
  return parts;
}

const B = 'XyZ-boundary';
// A body that tries hard to look like a boundary: CR alone, CRLF-, "--XyZ-b" without CRLF, CRLF--XyZ-boundar.
const tricky = 'a\rb\r\n-c\r\n--XyZ-b--XyZ-boundary no CRLF before\r\n--XyZ-boundar\r\r\n\r\n';
const body =
  'preamble, ignored\r\n' +
  `--${B}\r\n` +
  'Content-Disposition: form-data; name="purpose"\r\n\r\n' +
  'fine-tune' +
  `\r\n--${B}   \r\n` + // transport padding after the boundary is allowed
  'content-disposition: form-data; name="file"; filename="a;b \\"c\\".jsonl"\r\n' +
  'Content-Type: application/jsonl\r\n\r\n' +
  tricky +
  `\r\n--${B}\r\n` +
  'Content-Disposition: form-data; name="empty"\r\n\r\n' +
  `\r\n--${B}--\r\nepilogue, ignored`;
const expected: Parsed[] = [
  { name: 'purpose', filename: undefined, contentType: undefined, body: 'fine-tune' },
  { name: 'file', filename: 'a;b "c".jsonl', contentType: 'application/jsonl', body: tricky },
  { name: 'empty', filename: undefined, contentType: undefined, body: '' },
];

describe('multipartEvents', () => {
  test('parts, headers and bodies, with preamble, padding and epilogue ignored', async () => {
    expect(await parse(body, B)).toEqual(expected);
  });

  test('the same result wherever the chunks are cut (every single cut, every pair of cuts near the boundaries)', async () => {
    for (let i = 0; i <= body.length; i++) expect(await parse(body, B, [i])).toEqual(expected);
    const near = [...body.matchAll(/--XyZ/g)].map((m) => m.index);
    for (const a of near) for (let d = -4; d <= 16; d++) for (let e = 1; e <= 16; e++) {
      const cuts = [a + d, a + d + e].filter((x) => x > 0 && x < body.length);
      expect(await parse(body, B, cuts)).toEqual(expected);
    }
  });

  test('one byte at a time', async () => {
    expect(await parse(body, B, Array.from({ length: body.length - 1 }, (_, i) => i + 1))).toEqual(expected);
  });

  test('the first boundary needs no CRLF before it; an empty header block and binary bytes are kept', async () => {
    const bin = Buffer.from([0, 255, 13, 10, 45, 45, 13, 0]);
    const bytes = Buffer.concat([Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="f"; filename=plain.bin\r\n\r\n`), bin, Buffer.from(`\r\n--${B}--`)]);
    const [p] = await parse(bytes, B);
    expect(p?.filename).toBe('plain.bin');
    expect(Buffer.from(p!.body, 'latin1').equals(bin)).toBe(true);
  });

  test('filename* (RFC 5987, UTF-8) wins over filename; UTF-8 names are decoded', async () => {
    const raw = `--${B}\r\nContent-Disposition: form-data; name="file"; filename="fallback.txt"; filename*=UTF-8''%E2%9C%93%20ok.jsonl\r\n\r\nx\r\n--${B}--\r\n`;
    expect((await parse(raw, B))[0]?.filename).toBe('✓ ok.jsonl');
    const utf8 = Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="file"; filename="données.jsonl"\r\n\r\nx\r\n--${B}--\r\n`, 'utf8');
    expect((await parse(utf8, B))[0]?.filename).toBe('données.jsonl');
  });

  test('agrees with a real encoder (Bun\'s FormData)', async () => {
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new File(['{"a":1}\r\n--\r\n'], 'we"ird\nname.jsonl', { type: 'application/jsonl' }));
    const res = new Response(form);
    const boundary = boundaryOf(res.headers.get('content-type') ?? undefined)!;
    const parts = await parse(new Uint8Array(await res.arrayBuffer()), boundary);
    expect(parts.map((p) => [p.name, p.body])).toEqual([['purpose', 'batch'], ['file', '{"a":1}\r\n--\r\n']]);
    expect(parts[1]?.filename).toContain('we'); // browsers percent-encode " and LF: kept as sent
  });

  test('malformed bodies are refused with what is wrong', async () => {
    const fail = async (raw: string, pattern: RegExp, headerBytes?: number) => {
      const e = await parse(raw, B, [], headerBytes).then(() => undefined, (x: unknown) => x);
      expect(e).toBeInstanceOf(MultipartError);
      expect((e as Error).message).toMatch(pattern);
    };
    const head = `--${B}\r\nContent-Disposition: form-data; name="file"\r\n\r\n`;
    await fail(`${head}data that never ends`, /ended before the closing boundary/);
    await fail('no boundary at all', /no part found/);
    await fail(`${head}x\r\n--${B}garbage\r\n`, /must end with CRLF/);
    await fail(`--${B}\r\nContent-Type: text/plain\r\n\r\nx\r\n--${B}--`, /no Content-Disposition/);
    await fail(`--${B}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--${B}--`, /no name/);
    await fail(`--${B}\r\nContent-Disposition: attachment; name="a"\r\n\r\nx\r\n--${B}--`, /expected "form-data"/);
    await fail(`--${B}\r\nContent-Disposition: form-data; name="a"; filename="open\r\n\r\nx\r\n--${B}--`, /unterminated/);
    await fail(`--${B}\r\nX-Big: ${'y'.repeat(200)}\r\n\r\n`, /headers are over 100 bytes/, 100);
  });
});

describe('boundaryOf', () => {
  test('reads quoted and plain boundaries of multipart/form-data only', () => {
    expect(boundaryOf('multipart/form-data; boundary=abc')).toBe('abc');
    expect(boundaryOf('Multipart/Form-Data; charset=utf-8; BOUNDARY="a b:c"')).toBe('a b:c');
    expect(boundaryOf('multipart/form-data; boundary=----WebKitFormBoundaryX7')).toBe('----WebKitFormBoundaryX7');
    expect(boundaryOf('multipart/mixed; boundary=abc')).toBeUndefined();
    expect(boundaryOf('application/json')).toBeUndefined();
    expect(boundaryOf('multipart/form-data')).toBeUndefined();
    expect(boundaryOf(`multipart/form-data; boundary=${'x'.repeat(71)}`)).toBeUndefined();
    expect(boundaryOf(undefined)).toBeUndefined();
  });

  test('parameters: quoted values keep ; and escaped quotes, keys are case-insensitive, the first wins', () => {
    const { type, params } = parseParams('form-data; NAME="a;b"; filename="x\\"y"; name=other; flag');
    expect(type).toBe('form-data');
    expect(params.get('name')).toBe('a;b');
    expect(params.get('filename')).toBe('x"y');
  });
});
