/**
 * The bodies of `POST /v1/chat/completions` and `POST /v1/completions`, as OpenAI defines them, with the parameters
 * this server acts on. Unknown fields (user, metadata, store, ...) are accepted and ignored, as OpenAI does with
 * fields a model does not use; fields that would change the output in a way this server does not implement (n > 1,
 * logprobs, tools, penalties, ...) are refused by name rather than silently ignored. The routes validate with these
 * and `GET /openapi.json` describes them.
 */
import { z } from 'zod';
import { GENERATION_LIMITS } from './limits.ts';

const LIMIT = GENERATION_LIMITS.maxCompletionTokens;

const maxTokens = z.number().int().positive().max(LIMIT, `at most ${LIMIT} tokens per completion on this server`).nullish().describe(`tokens to generate at most (up to ${LIMIT}, and what the model's context leaves after the prompt)`);

/** Accepted only at the value that means "off". */
const off = <T extends string | number | boolean>(value: T, what: string) => z.literal(value, { error: `${what} is not supported by this server` }).nullish();
const none = (what: string) => z.array(z.unknown()).max(0, `${what} are not supported by this server`).nullish();

const sampling = {
  model: z.string({ error: 'model is required: a model id from GET /v1/models' }).min(1, 'model must not be empty').describe('a base model or fine-tuned model id from GET /v1/models (or a Hub id when the server is online)'),
  temperature: z.number().min(0).max(2).nullish().describe('0 = greedy; higher samples more freely (default 1)'),
  top_p: z.number().min(0).max(1).nullish().describe('sample among the most likely tokens whose probability reaches top_p (default 1)'),
  seed: z.number().int().nullish().describe('the same seed and parameters give the same sample (default: random)'),
  stop: z.union([z.string().min(1), z.array(z.string().min(1, 'stop sequences must not be empty')).max(4, 'at most 4 stop sequences')], { error: 'stop must be a string or a list of up to 4 strings' }).nullish().describe('up to 4 sequences that end the text (not included in it)'),
  stream: z.boolean().nullish().describe('send the text as server-sent events as it is generated'),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish().describe('include_usage: a last chunk with the token counts'),
  n: off(1, 'n other than 1'),
  presence_penalty: off(0, 'presence_penalty other than 0'),
  frequency_penalty: off(0, 'frequency_penalty other than 0'),
  logit_bias: z.record(z.string(), z.number()).refine((b) => Object.keys(b).length === 0, 'logit_bias is not supported by this server').nullish(),
};

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const content = z.union([z.string(), z.array(textPart)], { error: 'content must be a string or a list of {"type": "text", "text": ...} parts (only text is supported)' });

const message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant'], { error: 'role must be system, developer, user or assistant (tools are not supported)' }),
  content,
  name: z.string().optional(),
});

export const chatCompletionSchema = z.object({
  ...sampling,
  messages: z.array(message, { error: 'messages must be a list of {role, content}' }).min(1, 'messages must hold at least one message').describe("the conversation, rendered with the model's chat template"),
  max_tokens: maxTokens,
  max_completion_tokens: maxTokens,
  logprobs: off(false, 'logprobs'),
  top_logprobs: off(0, 'top_logprobs'),
  tools: none('tools'),
  functions: none('functions'),
  response_format: z.object({ type: z.literal('text', { error: 'response_format other than text is not supported by this server' }) }).nullish(),
});

export const completionSchema = z.object({
  ...sampling,
  prompt: z.string({ error: 'prompt must be a string (lists and token arrays are not supported)' }).describe('the text to continue'),
  max_tokens: maxTokens,
  logprobs: off(0, 'logprobs'),
  echo: off(false, 'echo'),
  best_of: off(1, 'best_of other than 1'),
  suffix: off('', 'suffix'),
});

export type ChatBody = z.output<typeof chatCompletionSchema>;
export type CompletionBody = z.output<typeof completionSchema>;
