/**
 * Packing documents for continued pre-training: each document is encoded (BOS in front when the tokenizer adds
 * one), followed by EOS, and the token stream of all documents is cut into sequences of exactly `seqLen` tokens.
 * Every position is trained (labels = inputIds). Documents run across sequence boundaries; the last, shorter
 * sequence is dropped unless `keepPartial`.
 */
import type { Tokenizer } from '../tokenizer/index.ts';
import { encodeText } from './encode.ts';
import { compactExample, type Example } from './example.ts';

/** Result of {@link packDocuments}. */
export interface Packed {
  readonly examples: Example[];
  /** Tokens of all documents (BOS and EOS included). */
  readonly tokens: number;
  /** Tokens of the dropped partial last sequence (0 with keepPartial). */
  readonly droppedTokens: number;
}

/** Encodes and packs `documents` into sequences of `seqLen` tokens. */
export function packDocuments(
  tok: Tokenizer,
  documents: Iterable<string>,
  seqLen: number,
  keepPartial = false,
): Packed {
  const examples: Example[] = [];
  let current: number[] = [];
  let tokens = 0;
  for (const doc of documents) {
    const ids = encodeText(tok, doc);
    if (tok.eosId !== null) ids.push(tok.eosId);
    tokens += ids.length;
    let from = 0;
    while (from < ids.length) {
      const take = Math.min(seqLen - current.length, ids.length - from);
      for (let i = from; i < from + take; i++) current.push(ids[i] as number);
      from += take;
      if (current.length === seqLen) {
        examples.push(compactExample({ inputIds: current, labels: current }));
        current = [];
      }
    }
  }
  let droppedTokens = current.length;
  if (keepPartial && current.length > 0) {
    examples.push(compactExample({ inputIds: current, labels: current }));
    droppedTokens = 0;
  }
  return { examples, tokens, droppedTokens };
}
