/**
 * Chats → token ids with a per-token loss mask over assistant turns, in one pass over the conversation.
 *
 * How assistant spans are found. The conversation is rendered once with the chat template (F) and encoded once
 * (ids); every boundary is first found as a character offset in F and then mapped to a token offset (see
 * {@link TokenOffsets}: the longest common prefix of encode(F[0..c)) and ids).
 *  1. Prefix renders (the normal case). For message i, P_i = template(messages[0..i]) ends at character |P_i| of F
 *     when F starts with P_i; the token boundary is then exactly the token count of P_i (the "token-length
 *     difference" of consecutive prefixes). An assistant turn's trained part starts after
 *     G_i = template(messages[0..i-1], add_generation_prompt=true), so the generation header
 *     ("<|im_start|>assistant\n") is not trained, while the content and the end-of-turn text ("<|im_end|>\n",
 *     " </s>") up to |P_i| are.
 *  2. Fallback, for templates whose prefix renders are not prefixes of F (e.g. they render the last message
 *     differently, or raise on partial conversations): the message content is searched in F from the previous
 *     boundary, and an assistant turn's end is extended over the template's end-of-turn text, learnt by rendering
 *     a probe conversation. `method` says which way was needed.
 * A token that straddles a boundary (BPE merged across it) is counted with the later part.
 */
import type { ChatMessage, Tokenizer } from '../tokenizer/index.ts';
import { encodeText, TokenOffsets } from './encode.ts';
import { IGNORE_INDEX } from './example.ts';
import type { ResolvedTokenizeOptions } from './options.ts';

/**
 * Token span of one message. For assistant turns [start, contentStart) is the generation header (never trained)
 * and [contentStart, end) the content with its end-of-turn text; for other roles contentStart = start.
 */
export interface TurnSpan {
  readonly message: number;
  readonly role: string;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
  /** Whether the content span carries loss. */
  readonly trained: boolean;
}

/** A tokenised chat. */
export interface ChatEncoding {
  readonly inputIds: number[];
  readonly labels: number[];
  readonly turns: TurnSpan[];
  /** 'prefix' when every boundary came from prefix renders, 'search' when the fallback was needed. */
  readonly method: 'prefix' | 'search';
}

/** Options of {@link encodeChat}. */
export interface EncodeChatOptions {
  /** Chat template name or source (default: the tokenizer's). */
  readonly template?: string | undefined;
  /** Which assistant turns carry loss. */
  readonly trainOn: ResolvedTokenizeOptions['trainOn'];
  /** Train on every token instead (trainOnPrompt). */
  readonly trainAll?: boolean | undefined;
}

const probeCache = new WeakMap<Tokenizer, Map<string, string>>();

/**
 * The text a template writes right after an assistant message's content (e.g. "<|im_end|>\n"): the common prefix
 * of what follows the first and the second assistant message of a probe conversation ('' if the probe fails).
 */
export function endOfTurnText(tok: Tokenizer, template: string | undefined): string {
  let byTemplate = probeCache.get(tok);
  if (byTemplate === undefined) probeCache.set(tok, (byTemplate = new Map()));
  const key = template ?? '';
  let eot = byTemplate.get(key);
  if (eot === undefined) {
    const [u1, a1, u2, a2] = ['\uE000', '\uE001', '\uE002', '\uE003'];
    try {
      const probe: ChatMessage[] = [
        { role: 'user', content: u1 }, { role: 'assistant', content: a1 },
        { role: 'user', content: u2 }, { role: 'assistant', content: a2 },
      ];
      const r = tok.applyChatTemplate(probe, { template });
      const after1 = r.slice(r.indexOf(a1) + 1);
      const after2 = r.slice(r.indexOf(a2) + 1);
      let n = 0;
      while (n < after1.length && n < after2.length && after1[n] === after2[n]) n++;
      eot = r.includes(a1) && r.includes(a2) ? after1.slice(0, n) : '';
    } catch {
      eot = '';
    }
    byTemplate.set(key, eot);
  }
  return eot;
}

/** Length of the longest prefix of `s` that F has at position `at`. */
function matchLength(f: string, at: number, s: string): number {
  let n = 0;
  while (n < s.length && at + n < f.length && f[at + n] === s[n]) n++;
  return n;
}

/**
 * Renders and tokenises a chat, with labels on the assistant turns selected by `trainOn` (generation headers
 * excluded, end-of-turn text included). Throws when the template fails or a message cannot be located.
 */
export function encodeChat(tok: Tokenizer, messages: readonly ChatMessage[], opts: EncodeChatOptions): ChatEncoding {
  const template = opts.template;
  const full = tok.applyChatTemplate(messages, { template });
  const ids = encodeText(tok, full);
  const offsets = new TokenOffsets(tok, full, ids);
  const render = (k: number, gen: boolean): string | undefined => {
    try {
      return tok.applyChatTemplate(messages.slice(0, k), { template, addGenerationPrompt: gen });
    } catch {
      return undefined; // e.g. a template that insists on a complete conversation
    }
  };
  const isPrefixAt = (s: string | undefined, from: number): s is string => s !== undefined && s.length >= from && full.startsWith(s);

  let method: ChatEncoding['method'] = 'prefix';
  let cursor = 0; // character offset where the current message's rendering starts
  let tokenCursor = 0;
  const chars: { start: number; contentStart: number; end: number }[] = [];
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as ChatMessage;
    const prefix = render(i + 1, false);
    let end = isPrefixAt(prefix, cursor) ? prefix.length : undefined;
    let contentStart = cursor;
    if (m.role === 'assistant') {
      const header = render(i, true);
      if (isPrefixAt(header, cursor) && (end === undefined || header.length <= end)) contentStart = header.length;
      else {
        method = 'search';
        const pos = full.indexOf(m.content.trim(), cursor);
        if (pos >= 0 && (end === undefined || pos <= end)) contentStart = pos;
      }
    }
    if (end === undefined) {
      method = 'search';
      const text = m.content.trim();
      const pos = full.indexOf(text, contentStart);
      if (pos < 0) throw new Error(`cannot locate message ${i} (${m.role}) in the rendered chat template output`);
      end = pos + text.length;
      if (m.role === 'assistant') end += matchLength(full, end, endOfTurnText(tok, template));
    }
    chars.push({ start: cursor, contentStart, end });
    cursor = end;
  }

  const labels = opts.trainAll ? [...ids] : new Array<number>(ids.length).fill(IGNORE_INDEX);
  const lastAssistant = messages.map((m) => m.role).lastIndexOf('assistant');
  const turns: TurnSpan[] = chars.map((c, i) => {
    const role = (messages[i] as ChatMessage).role;
    const start = Math.max(tokenCursor, offsets.at(c.start));
    const contentStart = Math.max(start, offsets.at(c.contentStart));
    const end = Math.max(contentStart, offsets.at(c.end));
    tokenCursor = end;
    const trained = role === 'assistant' && (opts.trainOn === 'all-assistant' || i === lastAssistant);
    if (trained && !opts.trainAll) for (let t = contentStart; t < end; t++) labels[t] = ids[t] as number;
    return { message: i, role, start, contentStart, end, trained: trained || !!opts.trainAll };
  });
  return { inputIds: ids, labels, turns, method };
}
