/** Incremental decoding with stop sequences, on stories260k's tokenizer (byte-fallback tokens included). */
import { beforeAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer, type Tokenizer } from '../../core/tokenizer/index.ts';
import { TextStream } from './text-stream.ts';

const MODEL = join(import.meta.dir, '../../../shared/models/stories260k');
const missing = !existsSync(MODEL);
if (missing) console.warn(`skipping the text stream tests: ${MODEL} is absent`);

describe.skipIf(missing)('TextStream', () => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await loadTokenizer(MODEL);
  });

  /** Feeds the tokens of `continuation` after `prompt` one by one; returns every delta and the final text. */
  function run(prompt: string, continuation: string, stops: string[]) {
    const promptIds = tok.encode(prompt);
    const ids = tok.encode(prompt + continuation).slice(promptIds.length);
    const s = new TextStream(tok, promptIds, stops);
    const deltas: string[] = [];
    let fed = 0;
    for (const id of ids) {
      fed++;
      const { delta, stopped } = s.push(id);
      deltas.push(delta);
      if (stopped) break;
    }
    deltas.push(s.finish());
    return { deltas, text: deltas.join(''), completion: s.completion, stopped: s.stopped, fed, total: ids.length };
  }

  test('without stops the deltas join to the continuation, leading space kept', () => {
    const r = run('Once upon a time', ' there was a dog. The dog was happy.', []);
    expect(r.text).toBe(' there was a dog. The dog was happy.');
    expect(r.deltas.filter(Boolean).length).toBeGreaterThan(5); // sent piece by piece
    expect(r.stopped).toBe(false);
  });

  test('a multi-byte character is sent whole, never as U+FFFD halves', () => {
    const r = run('The', ' 🐶 dog and the naïve café', []);
    expect(r.text).toBe(' 🐶 dog and the naïve café');
    expect(r.deltas.some((d) => d.includes('\uFFFD'))).toBe(false);
  });

  test('a stop sequence ends the text before it, and no part of it is ever sent', () => {
    const r = run('Once upon a time', ' there was a dog. The dog was happy.', ['. The']);
    expect(r.completion).toBe(' there was a dog');
    expect(r.text).toBe(' there was a dog');
    expect(r.stopped).toBe(true);
    expect(r.fed).toBeLessThan(r.total); // decoding can end early
  });

  test('a held-back prefix that turns out not to be a stop is sent after all', () => {
    const r = run('Once upon a time', ' there was a dog. Then a cat.', ['. The ']);
    expect(r.text).toBe(' there was a dog. Then a cat.');
    expect(r.stopped).toBe(false);
  });

  test('the earliest of several stops wins', () => {
    const r = run('Once', ' a cat sat. A dog ran.', ['ran', 'sat']);
    expect(r.completion).toBe(' a cat ');
  });
});
