/**
 * The Files API end to end: the whole app (createApp) on a real loopback server, driven by the official `openai`
 * client in both of its upload encodings: a buffered File through FormData, and streamed multipart (fs read
 * streams, `toStreamingFile`).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createReadStream, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile, toStreamingFile } from 'openai';
import { createApp } from '../app.ts';
import type { ApiError } from '../errors.ts';
import { filePath } from '../files/paths.ts';
import { validationDone } from '../files/validate.ts';
import { createService, type Service } from '../service.ts';
import type { ServerConfigInput } from '../config.ts';

const KEY = 'test-key-0123456789abcdef';

interface Running {
  svc: Service;
  client: OpenAI;
  base: string;
  logs: string[];
  close(): Promise<void>;
}

async function start(config: Partial<ServerConfigInput> = {}): Promise<Running> {
  const home = mkdtempSync(join(tmpdir(), 'tuneforge-files-'));
  const logs: string[] = [];
  const svc = await createService({ home, apiKeys: [KEY], ...config }, (l) => logs.push(l));
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: createApp(svc).fetch });
  const base = `http://127.0.0.1:${server.port}/v1`;
  // maxRetries 0: a retried request would hide a status the client should have seen once.
  const client = new OpenAI({ apiKey: KEY, baseURL: base, maxRetries: 0 });
  return {
    svc, client, base, logs,
    async close() {
      await server.stop(true);
      await svc.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

const chatLine = (q: string, a: string) => JSON.stringify({ messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: q }, { role: 'assistant', content: a }] });
const CHAT = `${[chatLine('hi', 'hello'), chatLine('2+2?', '4'), chatLine('ünïcödé ✓', 'ok')].join('\n')}\n`;

/** The APIError a call rejects with (fails the test when it resolves). */
async function apiError(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(OpenAI.APIError);
  return e as InstanceType<typeof OpenAI.APIError>;
}

/** Polls (every 10 ms, at most 5 s) until `check` holds. */
async function until(check: () => boolean): Promise<void> {
  for (const end = Date.now() + 5000; !check(); await Bun.sleep(10)) if (Date.now() > end) throw new Error('timed out');
}

/** Nothing an upload left: the files folder's entries. */
const stored = (svc: Service) => readdirSync(svc.paths.files);

describe('files API', () => {
  let r: Running;
  beforeAll(async () => {
    r = await start();
  });
  afterAll(() => r.close());

  test('upload (buffered File) → uploaded, then processed; retrieve; content equals the upload; delete removes row and bytes', async () => {
    const f = await r.client.files.create({ file: await toFile(Buffer.from(CHAT), 'train.jsonl'), purpose: 'fine-tune' });
    expect(f).toMatchObject({ object: 'file', bytes: Buffer.byteLength(CHAT), filename: 'train.jsonl', purpose: 'fine-tune', status: 'uploaded', status_details: null });
    expect(f.id).toMatch(/^file-[0-9A-Za-z]{24}$/);
    expect((await validationDone(r.svc, f.id)).status).toBe('processed');
    expect(await r.client.files.retrieve(f.id)).toMatchObject({ id: f.id, status: 'processed', status_details: null });
    expect(await (await r.client.files.content(f.id)).text()).toBe(CHAT);
    expect(stored(r.svc)).toEqual([`${f.id}.jsonl`]); // named by the id, no .part left behind
    expect(await r.client.files.delete(f.id)).toEqual({ id: f.id, object: 'file', deleted: true });
    expect(existsSync(filePath(r.svc, f.id))).toBe(false);
    expect((await apiError(r.client.files.retrieve(f.id))).status).toBe(404);
    expect(await apiError(r.client.files.delete(f.id))).toBeInstanceOf(OpenAI.NotFoundError);
  });

  test('upload from fs.createReadStream (the client streams it) and waitForProcessing', async () => {
    const src = join(r.svc.paths.home, 'src.jsonl');
    writeFileSync(src, CHAT);
    const f = await r.client.files.create({ file: createReadStream(src), purpose: 'fine-tune' });
    expect(f.filename).toBe('src.jsonl');
    expect((await r.client.files.waitForProcessing(f.id, { pollInterval: 20, maxWait: 5000 })).status).toBe('processed');
    expect(await (await r.client.files.content(f.id)).text()).toBe(CHAT);
    await r.client.files.delete(f.id);
  });

  test('other purposes are processed at once and not validated', async () => {
    const f = await r.client.files.create({ file: await toFile(Buffer.from('not json at all'), 'notes.txt'), purpose: 'user_data' });
    expect(f.status).toBe('processed');
    await r.client.files.delete(f.id);
  });

  test('a malformed fine-tune file ends status error with the bad lines named', async () => {
    const bad = [chatLine('ok', 'fine'), '{"messages": [', JSON.stringify({ messages: [{ role: 'user', content: 'no answer' }] }), JSON.stringify({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a', weight: 2 }] })].join('\n');
    const f = await r.client.files.create({ file: await toFile(Buffer.from(bad), 'bad.jsonl'), purpose: 'fine-tune' });
    const done = await validationDone(r.svc, f.id);
    expect(done.status).toBe('error');
    const seen = await r.client.files.retrieve(f.id);
    expect(seen.status).toBe('error');
    expect(seen.status_details).toStartWith('3 of 4 lines are invalid');
    expect(seen.status_details).toContain('line 2: invalid JSON');
    expect(seen.status_details).toContain('line 3: openai record: no assistant message');
    expect(seen.status_details).toContain('line 4: field "messages.1.weight": must be 0 or 1');
    expect(seen.status_details).not.toContain(r.svc.paths.home); // no server paths in what clients read
    const empty = await r.client.files.create({ file: await toFile(Buffer.from(''), 'empty.jsonl'), purpose: 'fine-tune' });
    expect((await validationDone(r.svc, empty.id)).status_details).toStartWith('the file is empty');
  });

  test('wrong key → 401 AuthenticationError, nothing stored', async () => {
    const before = stored(r.svc).length;
    const other = new OpenAI({ apiKey: 'wrong-key-0123456789abcdef', baseURL: r.base, maxRetries: 0 });
    expect(await apiError(other.files.list())).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(await apiError(other.files.create({ file: await toFile(Buffer.from(CHAT), 'x.jsonl'), purpose: 'fine-tune' }))).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(stored(r.svc).length).toBe(before);
  });

  test('missing or unknown purpose → 400 naming purpose, nothing stored', async () => {
    const before = stored(r.svc).length;
    const missing = await apiError(r.client.files.create({ file: await toFile(Buffer.from(CHAT), 'x.jsonl') } as unknown as OpenAI.FileCreateParams));
    expect(missing).toBeInstanceOf(OpenAI.BadRequestError);
    expect(missing.param).toBe('purpose');
    expect(missing.message).toContain('purpose is required');
    const wrong = await apiError(r.client.files.create({ file: await toFile(Buffer.from(CHAT), 'x.jsonl'), purpose: 'fine_tune' as OpenAI.FilePurpose }));
    expect(wrong).toBeInstanceOf(OpenAI.BadRequestError);
    expect(wrong.param).toBe('purpose');
    expect(wrong.message).toContain("got 'fine_tune'");
    expect(stored(r.svc).length).toBe(before);
  });

  test('no file part, a non-multipart body, a truncated multipart body → 400', async () => {
    const noFile = await apiError(r.client.files.create({ purpose: 'batch' } as unknown as OpenAI.FileCreateParams));
    expect(noFile.param).toBe('file');
    const auth = { authorization: `Bearer ${KEY}` };
    const json = await fetch(`${r.base}/files`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
    expect(json.status).toBe(400);
    expect(((await json.json()) as { error: { code: string } }).error.code).toBe('invalid_content_type');
    const cut = await fetch(`${r.base}/files`, {
      method: 'POST', headers: { ...auth, 'content-type': 'multipart/form-data; boundary=zz' },
      body: '--zz\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n{"text":"half',
    });
    expect(cut.status).toBe(400);
    expect(((await cut.json()) as { error: { message: string } }).error.message).toContain('ended before the closing boundary');
    expect(stored(r.svc).filter((n) => n.endsWith('.part'))).toEqual([]);
  });

  test('a client that goes away mid-upload leaves no half file and no row', async () => {
    const before = stored(r.svc);
    const abort = new AbortController();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (sent++ === 0) c.enqueue(Buffer.from('--zz\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n'));
        else {
          await Bun.sleep(5);
          c.enqueue(Buffer.alloc(64 * 1024, 'x'));
        }
      },
    });
    const req = fetch(`${r.base}/files`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'multipart/form-data; boundary=zz' }, body, signal: abort.signal });
    req.catch(() => undefined);
    await until(() => stored(r.svc).some((n) => n.endsWith('.part'))); // the server is writing
    abort.abort();
    await until(() => stored(r.svc).length === before.length);
    expect(stored(r.svc)).toEqual(before);
    expect((await r.client.files.list({ limit: 100 })).data.map((f) => `${f.id}.jsonl`).sort()).toEqual([...before].sort());
  });

  test('validationDone restarts a validation a restart interrupted', async () => {
    const id = 'file-Interrupted0000000000000';
    writeFileSync(filePath(r.svc, id), CHAT);
    await r.svc.store.createFile({ id, created_at: 1, bytes: CHAT.length, filename: 'x.jsonl', purpose: 'fine-tune', status: 'uploaded', status_details: null });
    const [a, b] = await Promise.all([validationDone(r.svc, id), validationDone(r.svc, id)]);
    expect([a.status, b.status]).toEqual(['processed', 'processed']);
    await r.client.files.delete(id);
    expect(await validationDone(r.svc, 'file-Gone0000000000000').then(() => 'resolved', (e: unknown) => (e as ApiError).status)).toBe(404);
  });

  test('unknown ids → 404; a path as id → 404 before any store or disk access', async () => {
    const unknown = 'file-AAAAAAAAAAAAAAAAAAAAAAAA';
    expect(await apiError(r.client.files.retrieve(unknown))).toBeInstanceOf(OpenAI.NotFoundError);
    expect(await apiError(r.client.files.content(unknown))).toBeInstanceOf(OpenAI.NotFoundError);
    expect(await apiError(r.client.files.delete(unknown))).toBeInstanceOf(OpenAI.NotFoundError);
    for (const id of ['../../etc/passwd', 'file-../../../etc/passwd', 'file-abc/../../x']) {
      for (const call of [() => r.client.files.retrieve(id), () => r.client.files.content(id), () => r.client.files.delete(id)]) {
        const e = await apiError(call());
        expect(e).toBeInstanceOf(OpenAI.NotFoundError);
        expect(e.code).toBe('invalid_id'); // refused by the id check: never looked up, never a path
      }
    }
    expect(() => filePath(r.svc, '../../etc/passwd')).toThrow('is not a file id');
  });

  test('none of the above was logged as a server problem', () => {
    expect(r.logs).toEqual([]);
  });
});

describe('files list', () => {
  let r: Running;
  beforeAll(async () => {
    r = await start();
  });
  afterAll(() => r.close());

  test('newest first, paged with for-await (limit 2), first_id/last_id, after, order, purpose', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const f = await r.client.files.create({ file: await toFile(Buffer.from(`{"text":"doc ${i}"}\n`), `f${i}.jsonl`), purpose: i % 2 ? 'batch' : 'fine-tune' });
      ids.push(f.id);
    }
    const newest = [...ids].reverse();
    const seen: string[] = [];
    for await (const f of r.client.files.list({ limit: 2 })) seen.push(f.id);
    expect(seen).toEqual(newest);

    const first = await r.client.files.list({ limit: 2 });
    expect(first.data.map((f) => f.id)).toEqual(newest.slice(0, 2));
    expect(first.has_more).toBe(true);
    expect(first.hasNextPage()).toBe(true);
    const pages = [first];
    while (pages.at(-1)!.hasNextPage()) pages.push(await pages.at(-1)!.getNextPage());
    expect(pages.map((p) => p.data.length)).toEqual([2, 2, 1]);

    const raw = (await (await fetch(`${r.base}/files?limit=2&after=${newest[1]}`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as Record<string, unknown>;
    expect(raw).toMatchObject({ object: 'list', has_more: true, first_id: newest[2], last_id: newest[3] });
    expect((await r.client.files.list({ order: 'asc', limit: 10 })).data.map((f) => f.id)).toEqual(ids);
    expect((await r.client.files.list({ purpose: 'batch' })).data.map((f) => f.id)).toEqual(newest.filter((_, i) => i % 2 === 1)); // ids 3 and 1
    const empty = (await (await fetch(`${r.base}/files?purpose=vision`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as Record<string, unknown>;
    expect(empty).toEqual({ object: 'list', data: [], has_more: false, first_id: null, last_id: null });
    expect((await apiError(r.client.files.list({ order: 'sideways' as 'asc' }))).param).toBe('order');
    expect((await apiError(r.client.files.list({ limit: 0 }))).param).toBe('limit');
  });
});

describe('upload limits and memory', () => {
  test('over limits.uploadBytes → 413 with the limit, no file on disk, no row (streamed and declared-length paths)', async () => {
    const r = await start({ limits: { uploadBytes: 1000 } });
    try {
      const small = await r.client.files.create({ file: await toFile(Buffer.alloc(1000, 'a'), 'exact.txt'), purpose: 'user_data' });
      expect(small.bytes).toBe(1000); // the limit itself is allowed
      await r.client.files.delete(small.id);
      const cases = [
        // FormData: a Content-Length within the multipart allowance, so the limit is hit while streaming
        () => toFile(Buffer.alloc(5000, 'a'), 'big.jsonl'),
        // streamed (no Content-Length at all)
        async () => toStreamingFile((async function* () { for (let i = 0; i < 100; i++) yield Buffer.alloc(1000, 'b'); })(), 'big.jsonl'),
        // a declared length far over the limit: refused before the body is read
        () => toFile(Buffer.alloc(3 * 2 ** 20, 'c'), 'huge.jsonl'),
      ];
      for (const file of cases) {
        const e = await apiError(r.client.files.create({ file: await file(), purpose: 'fine-tune' }));
        expect(e.status).toBe(413);
        expect(e.message).toContain('upload limit of 1000 bytes');
        expect(e.param).toBe('file');
        expect(stored(r.svc)).toEqual([]);
        expect((await r.client.files.list()).data).toEqual([]);
      }
    } finally {
      await r.close();
    }
  });

  test('a 50 MB upload streams to disk: memory grows far less than the file', async () => {
    const r = await start();
    try {
      const LINE = chatLine('q', 'x'.repeat(2 ** 20 - 100)); // ~1 MiB lines: validation stays cheap
      const lines = 50;
      async function* generate(): AsyncGenerator<string> {
        for (let i = 0; i < lines; i++) yield `${LINE}\n`; // made on the fly, never all at once
      }
      Bun.gc(true);
      const before = process.memoryUsage().rss;
      const f = await r.client.files.create({ file: toStreamingFile(generate(), 'big.jsonl', { type: 'application/jsonl' }), purpose: 'fine-tune' });
      Bun.gc(true);
      const grown = process.memoryUsage().rss - before;
      const size = (LINE.length + 1) * lines;
      expect(f.bytes).toBe(size);
      expect(statSync(filePath(r.svc, f.id)).size).toBe(size);
      expect(grown).toBeLessThan(size / 3); // generous: GC timing, the client's and server's buffers all count
      expect((await validationDone(r.svc, f.id)).status).toBe('processed');
      let downloaded = 0;
      const body = (await r.client.files.content(f.id)).body!;
      for await (const chunk of body) downloaded += chunk.byteLength;
      expect(downloaded).toBe(size);
    } finally {
      await r.close();
    }
  }, 30_000);
});
