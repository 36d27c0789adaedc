/**
 * Requests → prompt token ids, the way training encoded the same text (core/data): chats through the model's chat
 * template, or the built-in ChatML template when the tokenizer has none (what a chat fine-tune on this model learnt),
 * with the generation prompt of an assistant turn appended; BOS in front exactly when the tokenizer adds one.
 */
import { endOfTurnText } from '../../core/data/chat-mask.ts';
import { encodeText } from '../../core/data/encode.ts';
import type { ChatMessage, Tokenizer } from '../../core/tokenizer/index.ts';
import { ApiError } from '../errors.ts';

export interface Prompt {
  ids: number[];
  /** Stop sequences the format implies (a chat's end-of-turn text), on top of the request's. */
  stops: string[];
  /** Token ids the format implies as stops (an end-of-turn special token). */
  stopIds: number[];
}

export function textPrompt(tok: Tokenizer, prompt: string): Prompt {
  const ids = encodeText(tok, prompt);
  if (ids.length === 0) throw new ApiError(400, 'prompt is empty and this tokenizer has no BOS token to start from', 'prompt', 'invalid_prompt');
  return { ids, stops: [], stopIds: [] };
}

export function chatPrompt(tok: Tokenizer, messages: readonly ChatMessage[], template: string | undefined): Prompt {
  let text: string;
  try {
    text = tok.applyChatTemplate(messages, { addGenerationPrompt: true, template });
  } catch (e) {
    // Templates reject conversations they cannot render (e.g. roles that do not alternate): the request's fault.
    throw new ApiError(400, `the model's chat template refused these messages: ${(e as Error).message}`, 'messages', 'invalid_messages');
  }
  // The model ends its turn with the template's end-of-turn text ("<|im_end|>\n" for ChatML): the answer ends there.
  const eot = endOfTurnText(tok, template).trim();
  const eotId = eot ? tok.tokenToId(eot) : undefined;
  const special = eotId !== undefined && tok.specialIds.includes(eotId);
  return { ids: encodeText(tok, text), stops: eot && !special ? [eot] : [], stopIds: special ? [eotId] : [] };
}
