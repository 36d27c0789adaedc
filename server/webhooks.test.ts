/** Terminal-state webhooks as OpenAI signs them: the official client's `webhooks.unwrap` verifies ours; a wrong secret fails. */
import { expect, test } from 'bun:test';
import OpenAI from 'openai';
import { job } from './store/conformance.ts';
import { deliverJobWebhooks } from './webhooks.ts';

test('a succeeded job is POSTed with Standard Webhooks headers the openai client verifies', async () => {
  const secret = `whsec_${Buffer.from('a-secret-of-enough-bytes-0123456789').toString('base64')}`;
  const received: { body: string; headers: Headers }[] = [];
  const sink = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: async (r) => (received.push({ body: await r.text(), headers: r.headers }), new Response('ok')) });
  try {
    const done = job({ status: 'succeeded', fine_tuned_model: 'ft:x:y:z' });
    await deliverJobWebhooks([{ url: `http://127.0.0.1:${sink.port}/hook`, secret }], done, () => {});
    expect(received.length).toBe(1);
    const client = new OpenAI({ apiKey: 'unused-0123456789abcdef', baseURL: 'http://127.0.0.1:1/v1' });
    const event = await client.webhooks.unwrap(received[0]!.body, received[0]!.headers, secret);
    expect(event.type).toBe('fine_tuning.job.succeeded');
    expect((event.data as { id: string }).id).toBe(done.id);
    const wrong = `whsec_${Buffer.from('another-secret-0123456789abcdefgh').toString('base64')}`;
    expect(await client.webhooks.unwrap(received[0]!.body, received[0]!.headers, wrong).then(() => 'verified', () => 'refused')).toBe('refused');
    // Jobs that have not ended send nothing.
    await deliverJobWebhooks([{ url: `http://127.0.0.1:${sink.port}/hook`, secret }], job({ status: 'running' }), () => {});
    expect(received.length).toBe(1);
  } finally {
    await sink.stop(true);
  }
});
