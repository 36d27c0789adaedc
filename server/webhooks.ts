/**
 * Standard Webhooks on terminal job states, as OpenAI sends them (`fine_tuning.job.succeeded`, `.failed`,
 * `.cancelled`): headers `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "id.timestamp.body">`, keyed by the secret's bytes (`whsec_<base64>`, or the text itself), so the official
 * client's `client.webhooks.unwrap(body, headers, secret)` verifies them. Delivery retries with backoff and never
 * blocks the job.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { JobRecord } from './store/types.ts';

export interface WebhookTarget {
  url: string;
  secret: string;
}

const secretBytes = (secret: string): Buffer => (secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8'));

export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', secretBytes(secret)).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

export function jobEventPayload(job: JobRecord): { id: string; body: string } | undefined {
  if (job.status !== 'succeeded' && job.status !== 'failed' && job.status !== 'cancelled') return undefined;
  const id = `evt_${randomBytes(12).toString('hex')}`;
  return { id, body: JSON.stringify({ id, object: 'event', type: `fine_tuning.job.${job.status}`, created_at: Math.floor(Date.now() / 1000), data: { id: job.id } }) };
}

/** Sends the job's terminal event to every target (attempts 1 s, 4 s, 16 s apart); failures are logged, not thrown. */
export async function deliverJobWebhooks(targets: readonly WebhookTarget[], job: JobRecord, log: (line: string) => void, attempts = 4): Promise<void> {
  const payload = jobEventPayload(job);
  if (!payload) return;
  await Promise.all(targets.map(async (t) => {
    for (let i = 0; i < attempts; i++) {
      const timestamp = Math.floor(Date.now() / 1000);
      try {
        const r = await fetch(t.url, {
          method: 'POST',
          body: payload.body,
          headers: { 'content-type': 'application/json', 'webhook-id': payload.id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signWebhook(t.secret, payload.id, timestamp, payload.body) },
          signal: AbortSignal.timeout(10_000),
        });
        if (r.ok) return;
        log(`webhook ${t.url}: HTTP ${r.status} for ${payload.id} (attempt ${i + 1} of ${attempts})`);
      } catch (e) {
        log(`webhook ${t.url}: ${(e as Error).message} (attempt ${i + 1} of ${attempts})`);
      }
      if (i + 1 < attempts) await Bun.sleep(1000 * 4 ** i);
    }
  }));
}
