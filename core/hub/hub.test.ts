import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { copyFile, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { HubError, parseSource, resolveModel } from './index.ts';
import type { DownloadProgress, HubErrorCode } from './index.ts';
import { startHubServer } from './test-server.ts';
import type { HubServer } from './test-server.ts';

const REPO_ROOT = resolve(import.meta.dir, '..', '..');
const MODEL_DIR = join(REPO_ROOT, '..', 'shared', 'models', 'stories260k');
const HAVE_MODEL = existsSync(join(MODEL_DIR, 'config.json'));
const SKIP_NOTE = `[skipped: ${MODEL_DIR} is absent]`;
if (!HAVE_MODEL) console.warn(`hub tests that need the stories260k model are skipped: ${MODEL_DIR} not found`);

/** A test that needs ../shared/models/stories260k; its name says so when skipped. */
function modelTest(name: string, fn: () => Promise<void>): void {
  test.skipIf(!HAVE_MODEL)(HAVE_MODEL ? name : `${name} ${SKIP_NOTE}`, fn);
}

const REPO = 'tuneforge/stories260k';
const SHARDED = 'tuneforge/sharded';
const TOKEN = 'test-token-not-hf-prefixed';
const SAFETENSORS_SHA256 = '407a7c581bdd66972383ce9ad24857713fb98786d06ea564a2fe9b34ebe77dfd';
const DEFAULT_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'];
const HF_ENV = ['HF_TOKEN', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HOME'];

let tmp = '';
let hub: HubServer;
let privateHub: HubServer;
const savedEnv = new Map<string, string | undefined>();
let cacheCount = 0;
const newCache = (): string => join(tmp, `cache-${cacheCount++}`);

async function makeShardedRepo(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) await copyFile(join(MODEL_DIR, f), join(dir, f));
  const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  await writeFile(join(dir, shards[0]!), 'shard one');
  await writeFile(join(dir, shards[1]!), 'shard two');
  const weight_map = { 'a.weight': shards[0], 'b.weight': shards[1], 'c.weight': shards[1] };
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map }));
}

async function expectHubError(p: Promise<unknown>, code: HubErrorCode, ...fragments: string[]): Promise<HubError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HubError);
  const he = err as HubError;
  expect(he.code).toBe(code);
  for (const f of fragments) expect(he.message).toContain(f);
  return he;
}

beforeAll(async () => {
  for (const k of HF_ENV) {
    savedEnv.set(k, process.env[k]);
    delete process.env[k];
  }
  tmp = await mkdtemp(join(tmpdir(), 'tuneforge-hub-'));
  if (!HAVE_MODEL) return;
  await makeShardedRepo(join(tmp, 'sharded-src'));
  hub = await startHubServer({ repos: { [REPO]: MODEL_DIR, [SHARDED]: join(tmp, 'sharded-src') } });
  privateHub = await startHubServer({ repos: { [REPO]: MODEL_DIR }, token: TOKEN });
});

afterEach(() => {
  for (const k of HF_ENV) delete process.env[k];
});

afterAll(async () => {
  await hub?.close();
  await privateHub?.close();
  for (const [k, v] of savedEnv) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await rm(tmp, { recursive: true, force: true });
});

describe('parseSource', () => {
  test('repo ids, revisions and invalid sources', () => {
    expect(parseSource('owner/name')).toEqual({ kind: 'hub', repo: 'owner/name', revision: 'main' });
    expect(parseSource('owner/name@v1.0')).toEqual({ kind: 'hub', repo: 'owner/name', revision: 'v1.0' });
    expect(parseSource('owner/name', 'dev')).toEqual({ kind: 'hub', repo: 'owner/name', revision: 'dev' });
    expect(() => parseSource('owner/name@a', 'b')).toThrow(/pins revision "a"/);
    expect(() => parseSource('./no/such/folder')).toThrow(/neither an existing local folder/);
    expect(() => parseSource('just-a-name')).toThrow(HubError);
    expect(() => parseSource('a/b/c')).toThrow(HubError);
  });
});

describe('resolveModel against a local Hub server', () => {
  modelTest('downloads into the Hugging Face cache layout', async () => {
    const cacheDir = newCache();
    const events: DownloadProgress[] = [];
    const dir = await resolveModel(REPO, { endpoint: hub.url, cacheDir, onProgress: (e) => events.push(e) });
    const commit = hub.commitOf(REPO);
    const repoDir = join(cacheDir, 'models--tuneforge--stories260k');
    expect(dir).toBe(join(repoDir, 'snapshots', commit));
    expect((await readFile(join(repoDir, 'refs', 'main'), 'utf8')).trim()).toBe(commit);
    expect((await readdir(dir)).sort()).toEqual(DEFAULT_FILES);
    for (const f of DEFAULT_FILES) {
      const link = join(dir, f);
      expect((await lstat(link)).isSymbolicLink()).toBe(true);
      expect(await readlink(link)).toMatch(/^\.\.\/\.\.\/blobs\/[0-9a-f]{40,64}$/);
      expect(Buffer.compare(await readFile(link), await readFile(join(MODEL_DIR, f)))).toBe(0);
    }
    expect(await readlink(join(dir, 'model.safetensors'))).toBe(`../../blobs/${SAFETENSORS_SHA256}`);
    const blobs = await readdir(join(repoDir, 'blobs'));
    expect(blobs).toHaveLength(DEFAULT_FILES.length);
    expect(blobs.some((b) => b.endsWith('.incomplete'))).toBe(false);
    const last = events.filter((e) => e.file === 'model.safetensors').at(-1);
    expect(last).toEqual({ file: 'model.safetensors', loaded: 1044992, total: 1044992 });
  });

  modelTest('a second call downloads nothing; offline mode then works from the cache', async () => {
    const cacheDir = newCache();
    const dir = await resolveModel(REPO, { endpoint: hub.url, cacheDir });
    const before = hub.requests.length;
    expect(await resolveModel(REPO, { endpoint: hub.url, cacheDir })).toBe(dir);
    const second = hub.requests.slice(before);
    expect(second.filter((r) => r.includes('/resolve/') || r.includes('/paths-info/'))).toEqual([]);
    expect(second).toHaveLength(1); // only the revision → commit lookup

    const beforeOffline = hub.requests.length;
    expect(await resolveModel(REPO, { endpoint: hub.url, cacheDir, offline: true })).toBe(dir);
    process.env['HF_HUB_OFFLINE'] = '1';
    process.env['HF_HUB_CACHE'] = cacheDir;
    expect(await resolveModel(REPO, { endpoint: hub.url })).toBe(dir);
    expect(hub.requests.length).toBe(beforeOffline);
  });

  modelTest('offline mode fails clearly when not cached or partly cached', async () => {
    const cacheDir = newCache();
    await expectHubError(resolveModel(REPO, { endpoint: hub.url, cacheDir, offline: true }), 'not-cached', REPO, '"main"', cacheDir);
    await resolveModel(REPO, { endpoint: hub.url, cacheDir, files: ['config.json'] });
    await expectHubError(resolveModel(REPO, { cacheDir, offline: true }), 'not-cached', 'missing: tokenizer.json');
    expect(await resolveModel(REPO, { cacheDir, offline: true, files: ['config.json'] })).toContain(hub.commitOf(REPO));
  });

  modelTest('revision pinning with owner/name@<commit>', async () => {
    const cacheDir = newCache();
    const commit = hub.commitOf(REPO);
    const dir = await resolveModel(`${REPO}@${commit}`, { endpoint: hub.url, cacheDir });
    const repoDir = join(cacheDir, 'models--tuneforge--stories260k');
    expect(dir).toBe(join(repoDir, 'snapshots', commit));
    expect(existsSync(join(repoDir, 'refs', 'main'))).toBe(false);
    expect(await resolveModel(`${REPO}@${commit}`, { cacheDir, offline: true })).toBe(dir);
    await expectHubError(resolveModel(`${REPO}@main`, { cacheDir, offline: true }), 'not-cached', '"main"');
    await expectHubError(resolveModel(`${REPO}@no-such-branch`, { endpoint: hub.url, cacheDir }), 'revision-not-found', 'no-such-branch');
  });

  modelTest('private repo: clear 401 error without a token, success with HF_TOKEN or opts.token', async () => {
    await expectHubError(resolveModel(REPO, { endpoint: privateHub.url, cacheDir: newCache() }), 'unauthorized', 'HF_TOKEN', REPO);
    await expectHubError(resolveModel(REPO, { endpoint: privateHub.url, cacheDir: newCache(), token: 'wrong' }), 'unauthorized');
    const dir = await resolveModel(REPO, { endpoint: privateHub.url, cacheDir: newCache(), token: TOKEN });
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(true);
    process.env['HF_TOKEN'] = TOKEN;
    process.env['HF_ENDPOINT'] = privateHub.url;
    const dir2 = await resolveModel(REPO, { cacheDir: newCache() });
    expect(existsSync(join(dir2, 'tokenizer.json'))).toBe(true);
  });

  modelTest('sharded safetensors: downloads the index and every shard once', async () => {
    const dir = await resolveModel(SHARDED, { endpoint: hub.url, cacheDir: newCache() });
    expect((await readdir(dir)).sort()).toEqual([
      'config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
      'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json',
    ]);
    expect(await readFile(join(dir, 'model-00002-of-00002.safetensors'), 'utf8')).toBe('shard two');
  });

  test('unknown repo gives a clear 404 message', async () => {
    const empty = await startHubServer({ repos: {} });
    try {
      await expectHubError(resolveModel('nobody/nothing', { endpoint: empty.url, cacheDir: newCache() }), 'repo-not-found', '"nobody/nothing"', 'not found', '404');
    } finally {
      await empty.close();
    }
  });

  test('unreachable endpoint suggests HF_HUB_OFFLINE=1', async () => {
    const dead = await startHubServer({ repos: {} });
    await dead.close();
    await expectHubError(resolveModel(REPO, { endpoint: dead.url, cacheDir: newCache() }), 'network', 'HF_HUB_OFFLINE=1', dead.url);
  });

  modelTest('local folder source is returned as-is', async () => {
    expect(await resolveModel(MODEL_DIR)).toBe(MODEL_DIR);
    const empty = join(tmp, 'empty-model');
    await mkdir(empty, { recursive: true });
    await expectHubError(resolveModel(empty), 'local-invalid', 'config.json');
  });
});
