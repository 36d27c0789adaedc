/** The event stream as the official client reads it: chunks, then [DONE], or an error it raises as an APIError. */
import { afterAll, describe, expect, test } from 'bun:test';
import OpenAI from 'openai';
import { ApiError } from '../errors.ts';
import { chatChunk, responseHead } from './objects.ts';
import { sseResponse } from './sse.ts';

describe('sseResponse', () => {
  const head = responseHead('chat', 'm');
  let released = 0;
  const server = Bun.serve({
    port: 0, hostname: '127.0.0.1',
    fetch: (req) =>
      sseResponse(async (send) => {
        send(chatChunk(head, { role: 'assistant', content: '' }));
        send(chatChunk(head, { content: 'Hello' }));
        if (new URL(req.url).pathname.includes('fail')) throw new ApiError(400, 'the model refused', 'messages', 'refused');
        send(chatChunk(head, {}, 'stop'));
      }, req.signal, () => released++, () => {}),
  });
  afterAll(() => server.stop(true));
  const client = (path: string) => new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/${path}`, apiKey: 'k', maxRetries: 0 });

  test('the client iterates the chunks; the stream ends with [DONE] and releases once', async () => {
    const raw = await (await fetch(`http://127.0.0.1:${server.port}/ok`)).text();
    expect(raw.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(raw.split('\n\n').filter(Boolean).every((e) => e.startsWith('data: '))).toBe(true);
    const stream = await client('ok').chat.completions.create({ model: 'm', messages: [], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('Hello');
    expect(released).toBe(2);
  });

  test('a failure after the stream started reaches the client as an APIError', async () => {
    const stream = await client('fail').chat.completions.create({ model: 'm', messages: [], stream: true });
    let text = '';
    const e = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    })().catch((x: unknown) => x);
    expect(text).toBe('Hello');
    expect(e).toBeInstanceOf(OpenAI.APIError);
    expect((e as InstanceType<typeof OpenAI.APIError>).message).toContain('the model refused');
  });
});
