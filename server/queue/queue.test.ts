/**
 * The queue under stress and failure. Restart: a server process killed with SIGKILL while a job trains, started
 * again on the same home, finishes the job with weights bit-identical to an uninterrupted run of the same request,
 * and the job queued behind it survives. Concurrency: 20 clients submit 50 tiny jobs at once; every job is
 * accounted for, none lost or run twice — on SQLite (one server) and on Postgres (two servers sharing the queue).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import postgres from 'postgres';
import { startServer, type RunningServer } from '../serve.ts';
import { chatJsonl, until } from '../test-helpers.ts';

const REPO = join(import.meta.dir, '../..');
const STORIES = join(REPO, '../shared/models/stories260k');
const missing = !existsSync(join(STORIES, 'config.json'));
if (missing) console.warn(`skipping the queue tests: ${STORIES} is absent`);
const KEY = 'test-key-0123456789abcdef';
const TERMINAL = ['succeeded', 'failed', 'cancelled'];

/** `tuneforge serve` as its own process; resolves once it listens. */
async function spawnServer(home: string): Promise<{ proc: ReturnType<typeof Bun.spawn>; client: OpenAI }> {
  const proc = Bun.spawn([process.execPath, 'run', join(REPO, 'cli/main.ts'), 'serve', '--port', '0', '--home', home, '--allow-model', STORIES], {
    env: { ...process.env, TUNEFORGE_API_KEYS: KEY }, stdout: 'pipe', stderr: 'pipe',
  });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  let text = '';
  while (!/listening on (\S+)/.test(text)) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`the server exited before listening: ${await new Response(proc.stderr as ReadableStream).text()}`);
    text += new TextDecoder().decode(value);
  }
  const url = /listening on (\S+)/.exec(text)![1]!;
  return { proc, client: new OpenAI({ apiKey: KEY, baseURL: `${url}/v1`, maxRetries: 0 }) };
}

const tiny = (steps: number, every = 0) => ({ model: 'stories260k', seed: 5, method: { type: 'supervised', supervised: { hyperparameters: { batch_size: 4 } } }, tuneforge: { plugins: [{ name: 'lora', options: { r: 4 } }], train: { steps }, checkpoint: { every }, export: { merged: false } } });

describe.skipIf(missing)('the queue', () => {
  const servers: RunningServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  test('kill -9 mid-job, restart: the job resumes to the same weights; the queued job survives', async () => {
    const home = mkdtempSync(join(tmpdir(), 'tuneforge-restart-'));
    let { proc, client } = await spawnServer(home);
    const file = await client.files.create({ file: await toFile(Buffer.from(chatJsonl()), 'chats.jsonl'), purpose: 'fine-tune' });
    const interrupted = await client.fineTuning.jobs.create({ ...tiny(12, 2), training_file: file.id } as never);
    const reference = await client.fineTuning.jobs.create({ ...tiny(12, 2), training_file: file.id } as never);
    await until('a checkpoint of the first job', async () => ((await client.fineTuning.jobs.checkpoints.list(interrupted.id)).data.length > 0 ? true : undefined), 90_000);
    proc.kill('SIGKILL');
    await proc.exited;

    ({ proc, client } = await spawnServer(home));
    try {
      const done = await until('both jobs to finish', async () => {
        const jobs = await Promise.all([interrupted, reference].map((j) => client.fineTuning.jobs.retrieve(j.id)));
        return jobs.every((j) => TERMINAL.includes(j.status)) ? jobs : undefined;
      }, 150_000);
      expect(done.map((j) => j.status)).toEqual(['succeeded', 'succeeded']);
      const events = (await client.fineTuning.jobs.listEvents(interrupted.id, { limit: 100 })).data.map((e) => e.message);
      expect(events.some((m) => m.includes('server restarted'))).toBe(true);
      const weights = (id: string) => readFileSync(join(home, 'jobs', id, 'export', 'adapter', 'adapter_model.safetensors'));
      expect(weights(interrupted.id).equals(weights(reference.id))).toBe(true);
    } finally {
      proc.kill('SIGTERM');
      await proc.exited;
    }
  }, 300_000);

  async function fifty(clients: OpenAI[]): Promise<void> {
    const file = await clients[0]!.files.create({ file: await toFile(Buffer.from(chatJsonl(8)), 'c.jsonl'), purpose: 'fine-tune' });
    const submitted: string[] = [];
    await Promise.all(Array.from({ length: 20 }, async (_, c) => {
      for (let k = c; k < 50; k += 20) {
        const j = await clients[k % clients.length]!.fineTuning.jobs.create({ ...tiny(1), training_file: file.id, metadata: { batch: 'fifty' } } as never);
        submitted.push(j.id);
      }
    }));
    expect(new Set(submitted).size).toBe(50);
    const jobs = await until('all 50 jobs to finish', async () => {
      const all: OpenAI.FineTuning.FineTuningJob[] = [];
      for await (const j of clients[0]!.fineTuning.jobs.list({ limit: 20, metadata: { batch: 'fifty' } })) all.push(j);
      return all.length === 50 && all.every((j) => TERMINAL.includes(j.status)) ? all : undefined;
    }, 400_000);
    expect(new Set(jobs.map((j) => j.id))).toEqual(new Set(submitted));
    expect(jobs.filter((j) => j.status !== 'succeeded').map((j) => `${j.id} ${j.status} ${j.error?.message}`)).toEqual([]);
    // Run once each: one worker start per job, and one "started" event.
    for (const j of jobs) {
      const events = (await clients[0]!.fineTuning.jobs.listEvents(j.id, { limit: 100 })).data;
      expect(events.filter((e) => e.message === 'Fine-tuning job started').length).toBe(1);
      expect((j as unknown as { tuneforge: { attempts: number } }).tuneforge.attempts).toBe(1);
    }
  }

  test('SQLite: 20 clients, 50 jobs, every one run exactly once', async () => {
    const s = await startServer({ home: mkdtempSync(join(tmpdir(), 'tuneforge-fifty-')), port: 0, apiKeys: [KEY], allowModels: [STORIES], concurrency: 2, pollMs: 100 }, () => {});
    servers.push(s);
    await fifty([new OpenAI({ apiKey: KEY, baseURL: `${s.url}/v1`, maxRetries: 0 })]);
  }, 420_000);

  const pgUrl = process.env.TUNEFORGE_TEST_POSTGRES;
  if (!pgUrl) console.warn('skipping the Postgres queue test: set TUNEFORGE_TEST_POSTGRES (.ci/run starts a local server)');
  test.skipIf(!pgUrl)('Postgres: two servers share the queue; 50 jobs, every one run exactly once', async () => {
    const db = `tuneforge_queue_${process.pid}`;
    const admin = postgres(pgUrl!, { max: 1, onnotice: () => {} });
    await admin.unsafe(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.unsafe(`CREATE DATABASE ${db}`);
    const url = new URL(pgUrl!);
    url.pathname = `/${db}`;
    // Both servers need the uploaded file: they share one home folder (on several machines: a shared volume).
    const home = mkdtempSync(join(tmpdir(), 'tuneforge-fifty-pg-'));
    for (let i = 0; i < 2; i++) servers.push(await startServer({ home, store: url.toString(), port: 0, apiKeys: [KEY], allowModels: [STORIES], concurrency: 1, pollMs: 100 }, () => {}));
    await fifty(servers.slice(-2).map((s) => new OpenAI({ apiKey: KEY, baseURL: `${s.url}/v1`, maxRetries: 0 })));
    for (const s of servers.splice(-2)) await s.stop();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.end();
  }, 420_000);
});
