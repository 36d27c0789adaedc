/**
 * Encoding helpers shared by the example builders.
 *
 * Texts are encoded with `addSpecialTokens: false` and BOS is prepended by hand when — and only when — the
 * tokenizer's own post-processor adds one (as Llama's does) and the text does not already start with it (chat
 * templates such as Llama-2's write `<s>` themselves). EOS is always appended explicitly by the caller.
 */
import type { Tokenizer } from '../tokenizer/index.ts';

const addsBosCache = new WeakMap<Tokenizer, boolean>();

/** Whether `tok.encode(text)` prepends BOS by itself. */
export function addsBos(tok: Tokenizer): boolean {
  let v = addsBosCache.get(tok);
  if (v === undefined) {
    v = tok.bosId !== null && tok.encode('a')[0] === tok.bosId && tok.encode('a', { addSpecialTokens: false })[0] !== tok.bosId;
    addsBosCache.set(tok, v);
  }
  return v;
}

/** Token ids of `text`, with BOS in front as the tokenizer would add it (never twice). */
export function encodeText(tok: Tokenizer, text: string): number[] {
  const ids = tok.encode(text, { addSpecialTokens: false });
  if (addsBos(tok) && ids[0] !== tok.bosId) ids.unshift(tok.bosId as number);
  return ids;
}

/** Length of the longest common prefix of two id lists. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * Maps character offsets of `text` to token offsets of its encoding `ids = encodeText(tok, text)`.
 *
 * The token offset of character c is the length of the longest common prefix of `encodeText(text[0..c))` and `ids`:
 * when `text[0..c)` tokenises to a prefix of `ids` (the usual case at template boundaries) that is exactly its
 * token count; when a token straddles c (BPE merged characters across it), that token is counted after c.
 * Results are memoised.
 */
export class TokenOffsets {
  private readonly memo = new Map<number, number>();

  constructor(
    private readonly tok: Tokenizer,
    readonly text: string,
    readonly ids: readonly number[],
  ) {}

  /** Token index where character offset `c` falls. */
  at(c: number): number {
    if (c >= this.text.length) return this.ids.length;
    c = Math.max(0, c);
    let t = this.memo.get(c);
    if (t === undefined) {
      t = commonPrefixLength(encodeText(this.tok, this.text.slice(0, c)), this.ids);
      this.memo.set(c, t);
    }
    return t;
  }
}
