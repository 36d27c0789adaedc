/** Request bodies → how to decode and what to decode after. */
import type { ChatBody, CompletionBody } from './schemas.ts';

/** How to decode, from either body. */
export interface Sampling {
  /** Requested completion length, when given, and the parameter that gave it (for error messages). */
  maxTokens: number | undefined;
  maxTokensParam: 'max_tokens' | 'max_completion_tokens';
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
}

/** OpenAI's defaults: temperature 1, top_p 1, and a random seed when none is given (so samples differ). */
export function samplingOf(body: ChatBody | CompletionBody): Sampling {
  const newer = 'messages' in body ? (body.max_completion_tokens ?? undefined) : undefined;
  const maxTokens = newer ?? body.max_tokens;
  let temperature = body.temperature ?? 1;
  // top_p 0 keeps only the most likely token: greedy, which the sampler spells temperature 0.
  if (body.top_p === 0) temperature = 0;
  return {
    maxTokens: maxTokens ?? undefined,
    maxTokensParam: newer !== undefined ? 'max_completion_tokens' : 'max_tokens',
    temperature,
    topP: body.top_p || 1,
    seed: body.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]!,
    stop: body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop,
    stream: body.stream ?? false,
    includeUsage: body.stream_options?.include_usage ?? false,
  };
}

/** A message's text: content parts joined. `developer` is OpenAI's newer name for `system`, which templates know. */
export function chatMessages(body: ChatBody): { role: string; content: string }[] {
  return body.messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
  }));
}
