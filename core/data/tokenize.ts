/**
 * Records → training examples ({@link Example}: unshifted labels, -100 where there is no loss).
 *
 * - instruction records: prompt from `promptTemplate` (Alpaca by default), then the response and EOS; loss on the
 *   response + EOS only, unless `trainOnPrompt`. With `promptTemplate: 'chat'` the record becomes a chat
 *   (system, history pairs, the user turn "instruction\n\ninput", the assistant turn), ended by the template's
 *   end-of-turn text and no extra EOS. `system` and `history` are used only in that mode.
 * - prompt/completion records: the prompt verbatim (or through a custom template / the chat template).
 * - chats: see chat-mask.ts.
 * - text records: packed into full sequences of `seqLen` tokens (pack.ts), or, with `packText: false`, one example
 *   per document (BOS, text, EOS; truncated like a chat).
 * Truncation: see truncate.ts. Examples with no trained token left are dropped and counted.
 */
import type { ChatMessage, Tokenizer } from '../tokenizer/index.ts';
import { encodeChat } from './chat-mask.ts';
import { commonPrefixLength, encodeText } from './encode.ts';
import { compactExample, IGNORE_INDEX, trainedCount, type DraftExample, type Example } from './example.ts';
import { TokenizeOptionsSchema, parseOptions } from './options.ts';
import type { ResolvedTokenizeOptions, TokenizeOptions } from './options.ts';
import { packDocuments } from './pack.ts';
import type { ProgressFn } from './progress.ts';
import { enforceBadFraction } from './problems.ts';
import type { BadRecord } from './problems.ts';
import type { DataRecord, RecordOfKind } from './records.ts';
import { fillTemplate, renderInstructionPrompt } from './templates.ts';
import { truncatePair, truncateSequence } from './truncate.ts';

/** Counts of what {@link tokenizeDataset} did. */
export interface TokenizeStats {
  readonly records: number;
  readonly examples: number;
  /** Dropped by `truncation: 'drop'`. */
  readonly droppedTooLong: number;
  /** Dropped because truncation left no trained token (the response was cut away). */
  readonly droppedResponseTruncated: number;
  /** Chats whose spans needed the search fallback (template prefixes are not prefixes of the full render). */
  readonly chatFallbacks: number;
  /** Text records: tokens packed, and tokens of the dropped partial last sequence. */
  readonly packedTokens: number;
  readonly droppedPackTokens: number;
}

/** The result of {@link tokenizeDataset}. */
export interface TokenizedDataset {
  readonly examples: Example[];
  readonly stats: TokenizeStats;
  /** Records that could not be tokenised (template errors, responses that vanish in tokenisation). */
  readonly warnings: BadRecord[];
}

type Outcome = DraftExample | 'too-long' | 'response-truncated' | { readonly problem: string };

/** Prompt + response → example, loss on the response (+ EOS). */
function encodePair(tok: Tokenizer, prompt: string, response: string, o: ResolvedTokenizeOptions): Outcome {
  const ids = encodeText(tok, prompt + response);
  if (o.addEos && tok.eosId !== null) ids.push(tok.eosId);
  // Token count of the prompt inside the joint encoding (a token merged across the boundary counts as response).
  const promptLength = commonPrefixLength(encodeText(tok, prompt), ids);
  if (promptLength >= ids.length) return { problem: 'empty response after tokenisation' };
  const labels = ids.map((id, t) => (o.trainOnPrompt || t >= promptLength ? id : IGNORE_INDEX));
  const ex = truncatePair({ inputIds: ids, labels }, promptLength, o.maxLength, o.truncation, tok.bosId);
  return ex ?? (o.truncation === 'drop' ? 'too-long' : 'response-truncated');
}

/** A whole sequence (chat, unpacked text) → truncated example. */
function finishSequence(tok: Tokenizer, ex: DraftExample, o: ResolvedTokenizeOptions): Outcome {
  const t = truncateSequence(ex, o.maxLength, o.truncation, tok.bosId);
  if (t === null) return 'too-long';
  return trainedCount(t) === 0 ? 'response-truncated' : t;
}

function encodeMessages(tok: Tokenizer, messages: readonly ChatMessage[], o: ResolvedTokenizeOptions, fallbacks: { n: number }): Outcome {
  const enc = encodeChat(tok, messages, { template: o.chatTemplate, trainOn: o.trainOn, trainAll: o.trainOnPrompt });
  if (enc.method === 'search') fallbacks.n++;
  return finishSequence(tok, { inputIds: enc.inputIds, labels: enc.labels }, o);
}

function encodeInstruction(tok: Tokenizer, r: RecordOfKind<'instruction'>, o: ResolvedTokenizeOptions, fb: { n: number }): Outcome {
  if (o.promptTemplate === 'chat') {
    const messages: ChatMessage[] = [];
    if (r.system.trim() !== '') messages.push({ role: 'system', content: r.system });
    for (const [q, a] of r.history) messages.push({ role: 'user', content: q }, { role: 'assistant', content: a });
    const user = r.input.trim() === '' ? r.instruction : `${r.instruction}\n\n${r.input}`;
    messages.push({ role: 'user', content: user }, { role: 'assistant', content: r.output });
    return encodeMessages(tok, messages, o, fb);
  }
  return encodePair(tok, renderInstructionPrompt(o.promptTemplate, o.promptTemplateNoInput, r.instruction, r.input), r.output, o);
}

function encodePromptCompletion(tok: Tokenizer, r: RecordOfKind<'prompt-completion'>, o: ResolvedTokenizeOptions, fb: { n: number }): Outcome {
  if (o.promptTemplate === 'chat') {
    return encodeMessages(tok, [{ role: 'user', content: r.prompt }, { role: 'assistant', content: r.completion }], o, fb);
  }
  const prompt = o.promptTemplate === 'alpaca' ? r.prompt : fillTemplate(o.promptTemplate, { instruction: r.prompt, prompt: r.prompt, input: '' });
  return encodePair(tok, prompt, r.completion, o);
}

function encodeRecord(tok: Tokenizer, r: DataRecord, o: ResolvedTokenizeOptions, fb: { n: number }): Outcome {
  switch (r.kind) {
    case 'instruction':
      return encodeInstruction(tok, r, o, fb);
    case 'prompt-completion':
      return encodePromptCompletion(tok, r, o, fb);
    case 'chat':
      return encodeMessages(tok, r.messages, o, fb);
    case 'text': {
      const ids = encodeText(tok, r.text);
      if (tok.eosId !== null) ids.push(tok.eosId);
      return finishSequence(tok, { inputIds: ids, labels: [...ids] }, o);
    }
    case 'classification':
      throw new Error(
        `${r.source.file}: classification records ({text, label}) are not language-model examples; ` +
          'use tokenizeClassification, or convert them to prompt/completion records',
      );
  }
}

/**
 * Tokenises records into examples. Records that cannot be tokenised become warnings; more than `maxBadFraction`
 * of them throws a DatasetError.
 */
export function tokenizeDataset(records: readonly DataRecord[], tok: Tokenizer, options?: TokenizeOptions, progress?: ProgressFn): TokenizedDataset {
  const o = parseOptions(TokenizeOptionsSchema, options, 'tokenizeDataset');
  const examples: Example[] = [];
  const warnings: BadRecord[] = [];
  const fallbacks = { n: 0 };
  let droppedTooLong = 0;
  let droppedResponseTruncated = 0;
  const documents: string[] = [];
  for (const [i, r] of records.entries()) {
    progress?.(i);
    if (r.kind === 'text' && o.packText) {
      documents.push(r.text);
      continue;
    }
    let out: Outcome;
    try {
      out = encodeRecord(tok, r, o, fallbacks);
    } catch (e) {
      if (r.kind === 'classification') throw e;
      out = { problem: (e as Error).message };
    }
    if (out === 'too-long') droppedTooLong++;
    else if (out === 'response-truncated') droppedResponseTruncated++;
    else if ('problem' in out) warnings.push({ ...r.source, reason: out.problem });
    else examples.push(compactExample(out));
  }
  const packed = packDocuments(tok, documents, o.seqLen ?? o.maxLength, o.keepPartialPack);
  examples.push(...packed.examples);
  enforceBadFraction(warnings, records.length, o.maxBadFraction, 'tokenizeDataset');
  return {
    examples,
    warnings,
    stats: {
      records: records.length,
      examples: examples.length,
      droppedTooLong,
      droppedResponseTruncated,
      chatFallbacks: fallbacks.n,
      packedTokens: packed.tokens,
      droppedPackTokens: packed.droppedTokens,
    },
  };
}
