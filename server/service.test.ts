/**
 * The service end to end, as a user drives it: a real server on loopback, the official `openai` npm client. Upload a
 * chat JSONL, create a LoRA job on stories260k, page through jobs and events with `for await`, watch it succeed,
 * list checkpoints, download the adapter, chat with the fine-tuned model (streamed and not); then the refusals, each
 * with its status and a message that says what to change, and the store still consistent afterwards.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { startServer, type RunningServer } from './serve.ts';
import { chatJsonl, until } from './test-helpers.ts';

const STORIES = join(import.meta.dir, '../../shared/models/stories260k');
const missing = !existsSync(join(STORIES, 'config.json'));
if (missing) console.warn(`skipping the service end-to-end tests: ${STORIES} is absent`);

const KEY = 'test-key-0123456789abcdef';

describe.skipIf(missing)('the fine-tuning service through the openai client', () => {
  let server: RunningServer;
  let client: OpenAI;
  beforeAll(async () => {
    server = await startServer({ home: mkdtempSync(join(tmpdir(), 'tuneforge-serve-')), port: 0, apiKeys: [KEY], allowModels: [STORIES], pollMs: 100 }, () => {});
    client = new OpenAI({ apiKey: KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.stop();
  });

  test('upload, train, page, checkpoints, adapter, chat with the fine-tuned model', async () => {
    const file = await client.files.create({ file: await toFile(Buffer.from(chatJsonl()), 'chats.jsonl'), purpose: 'fine-tune' });
    expect(file.id).toMatch(/^file-/);
    const job = await client.fineTuning.jobs.create({
      model: 'stories260k', training_file: file.id, suffix: 'demo', seed: 7, metadata: { team: 'test' },
      method: { type: 'supervised', supervised: { hyperparameters: { batch_size: 4, learning_rate_multiplier: 2 } } },
      // @ts-expect-error the tuneforge extension is not in OpenAI's types
      tuneforge: { plugins: [{ name: 'lora', options: { r: 4 } }], train: { steps: 6 }, checkpoint: { every: 2 } },
    });
    expect(job.id).toMatch(/^ftjob-/);
    expect(['validating_files', 'queued']).toContain(job.status);
    const done = await until('the job to finish', async () => {
      const j = await client.fineTuning.jobs.retrieve(job.id);
      return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
    }, 120_000);
    expect(done.error).toBeNull();
    expect(done.status).toBe('succeeded');
    expect(done.fine_tuned_model).toBe(`ft:stories260k:demo:${job.id.slice('ftjob-'.length)}`);
    expect(done.trained_tokens).toBeGreaterThan(0);
    expect(done.result_files.length).toBeGreaterThanOrEqual(2);

    const listed: string[] = [];
    for await (const j of client.fineTuning.jobs.list({ limit: 1 })) listed.push(j.id);
    expect(listed).toContain(job.id);
    const filtered = await client.fineTuning.jobs.list({ metadata: { team: 'test' } });
    expect(filtered.data.map((j) => j.id)).toEqual([job.id]);

    const events: string[] = [];
    for await (const e of client.fineTuning.jobs.listEvents(job.id, { limit: 3 })) events.push(e.message);
    expect(events.length).toBeGreaterThan(6);
    expect(events.some((m) => m.startsWith('Step 6'))).toBe(true);
    expect(events.at(-1)).toContain('Created fine-tuning job');

    const checkpoints = await client.fineTuning.jobs.checkpoints.list(job.id);
    expect(checkpoints.data.map((c) => c.step_number)).toContain(6);
    expect(checkpoints.data[0]!.fine_tuned_model_checkpoint).toContain(':ckpt-step-');

    const results = await Promise.all(done.result_files.map((id) => client.files.retrieve(id)));
    const adapter = results.find((f) => f.filename.endsWith('-adapter.tar'));
    expect(adapter).toBeDefined();
    const tar = Buffer.from(await (await client.files.content(adapter!.id)).arrayBuffer());
    expect(tar.length).toBe(adapter!.bytes);
    expect(tar.subarray(257, 262).toString()).toBe('ustar');
    expect(tar.includes(Buffer.from('adapter/adapter_model.safetensors'))).toBe(true);
    expect((await client.files.content(results.find((f) => f.filename.endsWith('metrics.csv'))!.id).then((r) => r.text())).split('\n')[0]).toStartWith('step,train_loss');

    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toContain(done.fine_tuned_model!);
    const reply = await client.chat.completions.create({ model: done.fine_tuned_model!, messages: [{ role: 'user', content: 'Tell me about Lily.' }], max_tokens: 12, temperature: 0 });
    expect(reply.choices[0]!.message.content!.length).toBeGreaterThan(0);
    let streamed = '';
    const stream = await client.chat.completions.create({ model: done.fine_tuned_model!, messages: [{ role: 'user', content: 'Tell me about Lily.' }], max_tokens: 12, temperature: 0, stream: true });
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
    expect(streamed).toBe(reply.choices[0]!.message.content!);
  }, 150_000);

  test('the event stream replays after Last-Event-ID and ends with the job', async () => {
    const jobs = await client.fineTuning.jobs.list({ limit: 1 });
    const id = jobs.data[0]!.id;
    const read = async (headers: Record<string, string>) => {
      const r = await fetch(`${server.url}/v1/fine_tuning/jobs/${id}/events?stream=true`, { headers: { authorization: `Bearer ${KEY}`, ...headers } });
      expect(r.headers.get('content-type')).toBe('text/event-stream');
      return [...(await r.text()).matchAll(/^id: (\S+)$/gm)].map((m) => m[1]!);
    };
    const all = await read({});
    expect(all.length).toBeGreaterThan(6);
    expect(await read({ 'last-event-id': all[3]! })).toEqual(all.slice(4));
  });

  test('refusals: status, a message that says what to change, nothing stored', async () => {
    const bad = new OpenAI({ apiKey: 'wrong-key-0123456789abcdef', baseURL: `${server.url}/v1`, maxRetries: 0 });
    const denied = await bad.fineTuning.jobs.list().then(() => undefined, (e: unknown) => e);
    expect(denied).toBeInstanceOf(OpenAI.AuthenticationError);
    const before = (await client.fineTuning.jobs.list({ limit: 100 })).data.length;
    const file = await client.files.create({ file: await toFile(Buffer.from(chatJsonl(8)), 'x.jsonl'), purpose: 'fine-tune' });

    const refused = async (body: Record<string, unknown>, status: number, pattern: RegExp) => {
      const e = await client.fineTuning.jobs.create(body as never).then(() => undefined, (err: unknown) => err as InstanceType<typeof OpenAI.APIError>);
      expect(e, JSON.stringify(body)).toBeDefined();
      expect(e!.status).toBe(status);
      expect(e!.message).toMatch(pattern);
    };
    await refused({ training_file: file.id }, 400, /model/);
    await refused({ model: 'stories260k', training_file: 'file-doesnotexist0000' }, 400, /training_file: no uploaded file/);
    await refused({ model: '../../etc', training_file: file.id }, 400, /path/);
    await refused({ model: 'nobody/unknown-model', training_file: file.id, tuneforge: { plugins: ['@evil/plugin'] } }, 400, /plugin/);
    await refused({ model: 'stories260k', training_file: file.id, tuneforge: { plugins: ['./steal.ts'] } }, 400, /plugin/);
    await refused({ model: 'stories260k', training_file: file.id, tuneforge: { output: '/tmp/x' } }, 400, /output/);
    expect((await client.fineTuning.jobs.list({ limit: 100 })).data.length).toBe(before);

    const finished = (await client.fineTuning.jobs.list({ limit: 100 })).data.find((j) => j.status === 'succeeded')!;
    const e = await client.fineTuning.jobs.cancel(finished.id).then(() => undefined, (err: unknown) => err as InstanceType<typeof OpenAI.APIError>);
    expect(e?.status).toBe(400);
    expect(e?.message).toMatch(/is succeeded: only a job that has not finished can be cancelled/);
    expect((await client.fineTuning.jobs.retrieve(finished.id)).status).toBe('succeeded');
    expect(await client.fineTuning.jobs.retrieve('ftjob-nothere0000').then(() => undefined, (err: unknown) => err)).toBeInstanceOf(OpenAI.NotFoundError);
    const r = await fetch(`${server.url}/v1/fine_tuning/jobs`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: 'x'.repeat(3 * 2 ** 20) });
    expect(r.status).toBe(413);
  });

  test('openapi.json and health need no key; a job can be planned before it is created', async () => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toContain('/fine_tuning/jobs/{fine_tuning_job_id}/events');
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    const file = await client.files.create({ file: await toFile(Buffer.from(chatJsonl(8)), 'p.jsonl'), purpose: 'fine-tune' });
    const plan = await client.post<{ totalBytes: number; items: { component: string }[] }>('/plans', { body: { model: 'stories260k', training_file: file.id, tuneforge: { plugins: ['prefix'] } } });
    expect(plan.totalBytes).toBeGreaterThan(0);
    expect(plan.items.some((i) => i.component.startsWith('weights'))).toBe(true);
  });
});
