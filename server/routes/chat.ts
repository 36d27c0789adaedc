/**
 * OpenAI's inference routes on this server's models: `GET /models` (the allowed local base models and every
 * fine-tuned model), `GET /models/{model}`, `POST /chat/completions` and `POST /completions`, whole or streamed as
 * server-sent events. Generators stay loaded between requests (see generation/engine.ts); requests to one model
 * decode one at a time, and every token is awaited, so other routes are served while a long completion runs.
 *
 * ```ts
 * const client = new OpenAI({ baseURL: 'http://127.0.0.1:8000/v1', apiKey });
 * const stream = await client.chat.completions.create({ model: 'stories260k', messages, stream: true });
 * for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta.content ?? '');
 * ```
 */
import { Hono, type Context } from 'hono';
import { ApiError } from '../errors.ts';
import { findModel, listModels, resolveTarget, type ModelTarget } from '../generation/catalog.ts';
import { complete, type CompletionJob, type CompletionResult } from '../generation/complete.ts';
import { generators, type Generators } from '../generation/engine.ts';
import { GENERATION_LIMITS } from '../generation/limits.ts';
import type { LoadedModel } from '../generation/load.ts';
import { chatChunk, chatCompletion, chatUsageChunk, responseHead, textChunk, textCompletion, textUsageChunk, usageOf } from '../generation/objects.ts';
import { chatMessages, samplingOf, type Sampling } from '../generation/params.ts';
import { chatCompletionSchema, completionSchema } from '../generation/schemas.ts';
import { chatPrompt, textPrompt, type Prompt } from '../generation/prompt.ts';
import { SerialQueueFullError } from '../generation/serial-queue.ts';
import { sseResponse } from '../generation/sse.ts';
import type { Tokenizer } from '../../core/tokenizer/index.ts';
import { jsonBody } from '../http.ts';
import type { Service } from '../service.ts';

export function chatRoutes(svc: Service): Hono {
  const app = new Hono();
  const pool = generators(svc);
  const limit = svc.config.limits.bodyBytes;

  app.get('/models', async (c) => c.json({ object: 'list', data: await listModels(svc) }));

  // Model ids hold ':' (fine-tuned) and may hold '/' (a path given to --allow-model): the parameter takes the rest.
  app.get('/models/:model{.+}', async (c) => {
    const id = c.req.param('model');
    const model = await findModel(svc, id);
    if (!model) throw new ApiError(404, `The model '${id}' does not exist (GET /v1/models lists this server's models)`, 'model', 'model_not_found');
    return c.json(model);
  });

  app.post('/chat/completions', async (c) => {
    const body = await jsonBody(c, chatCompletionSchema, limit);
    const messages = chatMessages(body);
    return serve(c, svc, pool, { kind: 'chat', model: body.model, sampling: samplingOf(body), prompt: (tok, t) => chatPrompt(tok, messages, t.chatTemplate) });
  });

  app.post('/completions', async (c) => {
    const body = await jsonBody(c, completionSchema, limit);
    return serve(c, svc, pool, { kind: 'text', model: body.model, sampling: samplingOf(body), prompt: (tok) => textPrompt(tok, body.prompt) });
  });

  return app;
}

interface CompletionRequest {
  kind: 'chat' | 'text';
  model: string;
  sampling: Sampling;
  prompt: (tok: Tokenizer, target: ModelTarget) => Prompt;
}

/**
 * Everything that can refuse the request (model, prompt, lengths, a full queue) happens before the response starts,
 * so refusals are proper 4xx answers even for streams.
 */
async function serve(c: Context, svc: Service, pool: Generators, req: CompletionRequest): Promise<Response> {
  const target = await resolveTarget(svc, req.model);
  const lease = await pool.acquire(target);
  let streaming = false;
  try {
    const model = lease.value;
    const prompt = req.prompt(model.tokenizer, target);
    const s = req.sampling;
    const job: CompletionJob = {
      promptIds: prompt.ids, maxTokens: completionLength(model, prompt.ids.length, s, req.kind),
      temperature: s.temperature, topP: s.topP, seed: s.seed, stops: [...s.stop, ...prompt.stops], stopIds: prompt.stopIds,
    };
    if (model.queue.full) throw busy(req.model);
    const head = responseHead(req.kind, req.model);
    const usage = (r: CompletionResult) => usageOf(prompt.ids.length, r.completionTokens);
    if (!s.stream) {
      const r = await inQueue(model, req.model, () => complete(model, { ...job, signal: c.req.raw.signal }));
      return c.json(req.kind === 'chat' ? chatCompletion(head, r.text, r.finishReason, usage(r)) : textCompletion(head, r.text, r.finishReason, usage(r)));
    }
    streaming = true;
    return sseResponse(
      (send, signal) =>
        inQueue(model, req.model, async () => {
          if (req.kind === 'chat') send(chatChunk(head, { role: 'assistant', content: '' }));
          const r = await complete(model, { ...job, signal }, (text) => send(req.kind === 'chat' ? chatChunk(head, { content: text }) : textChunk(head, text)));
          send(req.kind === 'chat' ? chatChunk(head, {}, r.finishReason) : textChunk(head, '', r.finishReason));
          if (s.includeUsage) send(req.kind === 'chat' ? chatUsageChunk(head, usage(r)) : textUsageChunk(head, usage(r)));
        }),
      c.req.raw.signal,
      () => lease.release(),
      svc.log,
    );
  } finally {
    if (!streaming) lease.release(); // a stream releases its lease when it ends
  }
}

/**
 * Tokens to generate: as asked, if prompt + completion fit the model's context on this server; by default OpenAI's 16
 * for legacy completions, and for chats whatever fits, up to the server's limit.
 */
function completionLength(model: LoadedModel, promptTokens: number, s: Sampling, kind: CompletionRequest['kind']): number {
  const room = model.context - promptTokens;
  if (room < 1) {
    throw new ApiError(400, `the prompt is ${promptTokens} tokens; this model's context on this server is ${model.context} tokens, which leaves no room for a completion`, kind === 'chat' ? 'messages' : 'prompt', 'context_length_exceeded');
  }
  if (s.maxTokens !== undefined && s.maxTokens > room) {
    throw new ApiError(400, `${s.maxTokensParam} is ${s.maxTokens}, but this model's context on this server is ${model.context} tokens and the prompt uses ${promptTokens}: at most ${room} remain`, s.maxTokensParam, 'context_length_exceeded');
  }
  return s.maxTokens ?? Math.min(room, kind === 'chat' ? GENERATION_LIMITS.maxCompletionTokens : GENERATION_LIMITS.defaultCompletionTokens);
}

const busy = (model: string): ApiError => new ApiError(429, `model '${model}' has ${GENERATION_LIMITS.queueDepth} requests waiting: retry later`, null, 'server_busy');

async function inQueue<T>(model: LoadedModel, name: string, task: () => Promise<T>): Promise<T> {
  try {
    return await model.queue.run(task);
  } catch (e) {
    throw e instanceof SerialQueueFullError ? busy(name) : e;
  }
}
