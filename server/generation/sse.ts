/**
 * Server-sent events as OpenAI streams completions: `data: <json>\n\n` per chunk and `data: [DONE]\n\n` at the end,
 * each written as soon as it is produced. A failure after the response started cannot change its status, so it is
 * sent as `data: {"error": ...}` (the official client raises it as an APIError) and the stream ends.
 *
 * ```ts
 * return sseResponse(async (send, signal) => { send(chunk1); send(chunk2); }, request.signal);
 * ```
 */
import { ApiError } from '../errors.ts';

const encoder = new TextEncoder();

export type Send = (data: unknown) => void;

/**
 * Runs `produce` and streams what it sends. Its signal aborts when the client disconnects (the request's signal or
 * the stream's cancellation), so producers stop decoding for nobody. `done` runs once, however the stream ended.
 */
export function sseResponse(produce: (send: Send, signal: AbortSignal) => Promise<void>, request: AbortSignal, done: () => void, log: (line: string) => void): Response {
  const abort = new AbortController();
  const onRequestAbort = () => abort.abort();
  request.addEventListener('abort', onRequestAbort, { once: true });
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const write = (line: string) => {
        if (!abort.signal.aborted) controller.enqueue(encoder.encode(`data: ${line}\n\n`));
      };
      void produce((data) => write(JSON.stringify(data)), abort.signal)
        .then(() => write('[DONE]'))
        .catch((e: unknown) => {
          if (!(e instanceof ApiError)) log(`generation: stream failed: ${(e as Error).stack ?? String(e)}`);
          const error = e instanceof ApiError
            ? { message: e.message, type: e.type, param: e.param, code: e.code }
            : { message: 'internal error: see the server log', type: 'server_error', param: null, code: null };
          write(JSON.stringify({ error }));
        })
        .finally(() => {
          request.removeEventListener('abort', onRequestAbort);
          try {
            controller.close();
          } catch {
            // already cancelled by the client
          }
          done();
        });
    },
    cancel() {
      abort.abort();
    },
  });
  return new Response(body, {
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' },
  });
}
