/**
 * The response objects of the completion endpoints, shaped as OpenAI sends them (openai-node
 * `resources/chat/completions`, `resources/completions`): whole responses and the chunks of a stream.
 */
import { randomBytes } from 'node:crypto';
import { nowSeconds } from '../ids.ts';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type FinishReason = 'stop' | 'length';

export const usageOf = (promptTokens: number, completionTokens: number): Usage => ({
  prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens,
});

/** What every object of one response shares: its id, model and time. */
export interface ResponseHead {
  id: string;
  created: number;
  model: string;
}

export const responseHead = (kind: 'chat' | 'text', model: string): ResponseHead => ({
  id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('base64url')}`, created: nowSeconds(), model,
});

export function chatCompletion(h: ResponseHead, text: string, finish: FinishReason, usage: Usage) {
  return {
    ...h, object: 'chat.completion' as const, system_fingerprint: null,
    choices: [{ index: 0, message: { role: 'assistant' as const, content: text, refusal: null }, logprobs: null, finish_reason: finish }],
    usage,
  };
}

/** A stream chunk: the first carries the role, the last the finish reason; `usage` only in the optional final one. */
export function chatChunk(h: ResponseHead, delta: { role?: 'assistant'; content?: string }, finish: FinishReason | null = null) {
  return { ...h, object: 'chat.completion.chunk' as const, system_fingerprint: null, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] };
}

export const chatUsageChunk = (h: ResponseHead, usage: Usage) => ({ ...h, object: 'chat.completion.chunk' as const, system_fingerprint: null, choices: [], usage });

export function textCompletion(h: ResponseHead, text: string, finish: FinishReason, usage: Usage) {
  return { ...h, object: 'text_completion' as const, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }], usage };
}

/** Streamed completions are `text_completion` objects too, each with a piece of the text. */
export function textChunk(h: ResponseHead, text: string, finish: FinishReason | null = null) {
  return { ...h, object: 'text_completion' as const, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }] };
}

export const textUsageChunk = (h: ResponseHead, usage: Usage) => ({ ...h, object: 'text_completion' as const, choices: [], usage });
