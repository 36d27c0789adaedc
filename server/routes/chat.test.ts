/**
 * The inference routes end to end: a real server on loopback driven by the official `openai` client, with
 * stories260k as the base model and a real PEFT prefix-tuning adapter as a fine-tuned model. Greedy outputs are
 * checked against the generator run directly on the same prompt tokens.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { adapterGenerator } from '../../cli/generate.ts';
import { encodeText } from '../../core/data/encode.ts';
import { createGenerator, type Generator } from '../../core/generate/generator.ts';
import { loadModel } from '../../core/models/load.ts';
import { loadTokenizer, type Tokenizer } from '../../core/tokenizer/index.ts';
import { createApp } from '../app.ts';
import { releaseGenerators } from '../generation/engine.ts';
import { createService, type Service } from '../service.ts';

const SHARED = join(import.meta.dir, '../../../shared');
const MODEL = join(SHARED, 'models/stories260k');
const PREFIX_ADAPTER = join(SHARED, 'fixtures/stories260k/peft/prefix_tuning');
const missing = !existsSync(MODEL) || !existsSync(PREFIX_ADAPTER);
if (missing) console.warn(`skipping the chat route tests: ${MODEL} or ${PREFIX_ADAPTER} is absent`);

const KEY = 'test-key-0123456789abcdef';
const TUNED = 'ft:stories260k:test:abc';
const JOB = 'ftjob-abc';
/** llama2.c's doc/stories260K.md: the temperature-0 sample. */
const GREEDY_STORY = ', there was a little girl named Lily. She loved to play outside in the park.';

describe.skipIf(missing)('chat routes', () => {
  let home: string;
  let svc: Service;
  let server: ReturnType<typeof Bun.serve>;
  let client: OpenAI;
  let baseURL: string;
  let tok: Tokenizer;
  let base: Generator;
  let tuned: Generator;

  /** What the generator itself gives after `prompt`, decoded as the server decodes a continuation. */
  async function reference(gen: Generator, prompt: number[], maxNewTokens: number): Promise<{ text: string; tokens: number }> {
    const out = await gen.generate(prompt, { maxNewTokens, stopTokens: [1, 2] });
    const text = tok.decode([...prompt, ...out], { skipSpecialTokens: true }).slice(tok.decode(prompt, { skipSpecialTokens: true }).length);
    return { text, tokens: out.length };
  }

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'tuneforge-chat-'));
    svc = await createService({ home, apiKeys: [KEY], allowModels: [MODEL] }, () => {});
    await svc.store.createJob({
      id: JOB, created_at: 1_700_000_000, status: 'succeeded', model: 'stories260k', spec: {}, config: {}, metadata: null,
      fine_tuned_model: TUNED, finished_at: 1_700_000_100, error: null, trained_tokens: 1000, estimated_finish: null,
      result_files: [], attempts: 1, worker_id: null, lease_until: null, control: null,
    });
    cpSync(PREFIX_ADAPTER, join(svc.paths.jobs, JOB, 'export', 'adapter'), { recursive: true });
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: createApp(svc).fetch });
    baseURL = `http://127.0.0.1:${server.port}/v1`;
    client = new OpenAI({ baseURL, apiKey: KEY, maxRetries: 0 });
    const { config, weights } = await loadModel(MODEL);
    tok = await loadTokenizer(MODEL);
    base = await createGenerator({ config, weights, maxLen: 512 });
    tuned = await createGenerator({ config, ...(await adapterGenerator(PREFIX_ADAPTER, config, weights)), maxLen: 512 });
  });

  afterAll(async () => {
    await server?.stop(true);
    await Promise.all([base?.release(), tuned?.release(), svc && releaseGenerators(svc)]);
    await svc?.close();
    rmSync(home, { recursive: true, force: true });
  });

  test('GET /models lists the base model and the fine-tuned one; retrieve by id, 404 for others', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toEqual(['stories260k', TUNED]);
    expect(await client.models.retrieve(TUNED)).toEqual({ id: TUNED, object: 'model', created: 1_700_000_100, owned_by: 'organization-owner' });
    expect((await client.models.retrieve('stories260k')).id).toBe('stories260k');
    expect((await client.models.retrieve(MODEL)).id).toBe(MODEL); // the path as given to --allow-model also names it
    const e = await client.models.retrieve('ft:stories260k:test:nope').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect((e as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });

  test('needs the API key', async () => {
    const other = new OpenAI({ baseURL, apiKey: 'wrong-key-0123456789abcdef', maxRetries: 0 });
    expect(await other.models.list().catch((x: unknown) => x)).toBeInstanceOf(OpenAI.AuthenticationError);
  });

  test('completions: greedy "Once upon a time" is the documented story; max_tokens ends it with length', async () => {
    const r = await client.completions.create({ model: 'stories260k', prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
    expect(r.object).toBe('text_completion');
    expect(r.choices[0]!.text.startsWith(GREEDY_STORY.slice(0, 40))).toBe(true);
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(r.usage).toEqual({ prompt_tokens: 5, completion_tokens: 20, total_tokens: 25 });
    const longer = await client.completions.create({ model: 'stories260k', prompt: 'Once upon a time', max_tokens: 40, temperature: 0 });
    expect(longer.choices[0]!.text.startsWith(GREEDY_STORY)).toBe(true);
    expect(longer.choices[0]!.text).toBe((await reference(base, tok.encode('Once upon a time'), 40)).text);
  });

  test('completions: a stop sequence ends the text before it, with finish_reason stop', async () => {
    const r = await client.completions.create({ model: 'stories260k', prompt: 'Once upon a time', max_tokens: 60, temperature: 0, stop: ['. ', 'Lily.'] });
    expect(r.choices[0]!.text).toBe(', there was a little girl named ');
    expect(r.choices[0]!.finish_reason).toBe('stop');
  });

  test('completions: streamed pieces join to the whole text', async () => {
    const stream = await client.completions.create({ model: 'stories260k', prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe((await reference(base, tok.encode('Once upon a time'), 40)).text);
    expect(finish).toBe('length');
    expect(usage).toEqual({ prompt_tokens: 5, completion_tokens: 40, total_tokens: 45 });
  });

  const messages = [{ role: 'system' as const, content: 'You tell stories.' }, { role: 'user' as const, content: 'Tell me a story about a dog.' }];

  test('chat: greedy equals the generator on the chat-templated prompt; streamed equals whole', async () => {
    const prompt = encodeText(tok, tok.applyChatTemplate(messages, { addGenerationPrompt: true }));
    const want = await reference(base, prompt, 48);
    expect(want.text.length).toBeGreaterThan(20);

    const r = await client.chat.completions.create({ model: 'stories260k', messages, max_tokens: 48, temperature: 0 });
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0]!.message).toMatchObject({ role: 'assistant', content: want.text });
    expect(r.choices[0]!.finish_reason).toBe(want.tokens === 48 ? 'length' : 'stop');
    expect(r.usage).toMatchObject({ prompt_tokens: prompt.length, completion_tokens: want.tokens, total_tokens: prompt.length + want.tokens });

    const stream = await client.chat.completions.create({ model: 'stories260k', messages, max_completion_tokens: 48, temperature: 0, stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0]!.object).toBe('chat.completion.chunk');
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks.length).toBeGreaterThan(10); // a chunk per token or so, not one at the end
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(want.text);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe(r.choices[0]!.finish_reason);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  test('sampling: the same seed gives the same text, another seed another', async () => {
    const ask = (seed: number) => client.completions.create({ model: 'stories260k', prompt: 'Once upon a time', max_tokens: 30, temperature: 1, top_p: 0.95, seed });
    const [a, b, c] = await Promise.all([ask(7), ask(7), ask(8)]); // queued one after another on one generator
    expect(a.choices[0]!.text).toBe(b.choices[0]!.text);
    expect(a.choices[0]!.text).not.toBe(c.choices[0]!.text);
  });

  test('fine-tuned model: decodes with its adapter (as the generator does), not as the base model', async () => {
    const prompt = tok.encode('Once upon a time');
    const want = await reference(tuned, prompt, 30);
    const r = await client.completions.create({ model: TUNED, prompt: 'Once upon a time', max_tokens: 30, temperature: 0 });
    expect(r.model).toBe(TUNED);
    expect(r.choices[0]!.text).toBe(want.text);
    expect(r.choices[0]!.text).not.toBe((await reference(base, prompt, 30)).text);
    const ask = (model: string) => client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 30, temperature: 0.8, seed: 5 });
    expect((await ask(TUNED)).choices[0]!.text).not.toBe((await ask('stories260k')).choices[0]!.text);
  });

  test('unknown models are 404 model_not_found', async () => {
    for (const model of ['nope', 'ft:stories260k:test:nope', '../etc']) {
      const e = await client.chat.completions.create({ model, messages }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
      expect((e as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
    }
  });

  test('bad parameters are 400s naming the parameter', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ temperature: 3 }, 'temperature'],
      [{ top_p: 1.5 }, 'top_p'],
      [{ max_tokens: 100_000 }, 'max_tokens'],
      [{ max_completion_tokens: 0 }, 'max_completion_tokens'],
      [{ max_tokens: 510 }, 'max_tokens'], // over the context left after the prompt
      [{ stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
      [{ n: 2 }, 'n'],
      [{ seed: 1.5 }, 'seed'],
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages.0.role'],
      [{ model: undefined }, 'model'],
    ];
    for (const [patch, param] of cases) {
      const body = { model: 'stories260k', messages, ...patch } as OpenAI.ChatCompletionCreateParamsNonStreaming;
      const e = await client.chat.completions.create(body).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OpenAI.BadRequestError);
      expect({ param: (e as InstanceType<typeof OpenAI.BadRequestError>).param, patch }).toEqual({ param, patch });
    }
    const e = await client.completions.create({ model: 'stories260k', prompt: ['a', 'b'] }).catch((x: unknown) => x);
    expect((e as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('prompt');
  });

  /** A long sampled stream, read by hand: 400 tokens with this seed. */
  const longStream = (signal?: AbortSignal) =>
    fetch(`${baseURL}/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, signal,
      body: JSON.stringify({ model: 'stories260k', prompt: 'Once upon a time', max_tokens: 400, temperature: 0.8, seed: 1, stream: true }),
    });
  let longStreamMs = 0;

  test('a stream sends tokens as they come, and other routes answer meanwhile', async () => {
    const started = performance.now();
    const res = await longStream();
    expect(res.headers.get('content-type')).toStartWith('text/event-stream');
    const reader = res.body!.getReader();
    const first = await reader.read();
    const firstAt = performance.now() - started;
    expect(new TextDecoder().decode(first.value).startsWith('data: {')).toBe(true);
    const models = await fetch(`${baseURL}/models`, { headers: { authorization: `Bearer ${KEY}` } });
    const modelsAt = performance.now() - started;
    expect(models.status).toBe(200);
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    const doneAt = performance.now() - started;
    expect(rest.endsWith('data: [DONE]\n\n')).toBe(true);
    console.log(`stream of 400 tokens: first chunk at ${firstAt.toFixed(0)} ms, /models answered at ${modelsAt.toFixed(0)} ms, done at ${doneAt.toFixed(0)} ms`);
    expect(firstAt).toBeLessThan(doneAt / 2);
    expect(modelsAt).toBeLessThan(doneAt / 2);
    longStreamMs = doneAt;
  });

  test('a client that goes away stops its generation: the next request does not wait for it', async () => {
    expect(longStreamMs).toBeGreaterThan(0);
    const abort = new AbortController();
    const res = await longStream(abort.signal);
    await res.body!.getReader().read();
    abort.abort();
    const started = performance.now();
    const next = await client.completions.create({ model: 'stories260k', prompt: 'Once upon a time', max_tokens: 1, temperature: 0 });
    const waited = performance.now() - started;
    console.log(`after a client left its ${longStreamMs.toFixed(0)} ms stream, the next request took ${waited.toFixed(0)} ms`);
    expect(next.choices[0]!.text).toBe(',');
    expect(waited).toBeLessThan(longStreamMs / 2);
  });
});
