/** One completion on a loaded stories260k: how it ends (stop token, length, context, abort) and the context it has. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelTarget } from './catalog.ts';
import { complete } from './complete.ts';
import { loadTarget, type LoadedModel } from './load.ts';

const SHARED = join(import.meta.dir, '../../../shared');
const MODEL = join(SHARED, 'models/stories260k');
const PREFIX_ADAPTER = join(SHARED, 'fixtures/stories260k/peft/prefix_tuning');
const missing = !existsSync(MODEL) || !existsSync(PREFIX_ADAPTER);
if (missing) console.warn(`skipping the completion tests: ${MODEL} or ${PREFIX_ADAPTER} is absent`);

describe.skipIf(missing)('complete', () => {
  let base: LoadedModel;
  let prefixed: LoadedModel;
  const greedy = { temperature: 0, topP: 1, seed: 0, stops: [] };

  beforeAll(async () => {
    const target = (adapter?: string): ModelTarget => ({ id: 'stories260k', source: MODEL, key: MODEL, ...(adapter ? { adapter } : {}) });
    [base, prefixed] = await Promise.all([loadTarget(target(), () => {}), loadTarget(target(PREFIX_ADAPTER), () => {})]);
  });
  afterAll(async () => {
    await Promise.all([base?.generator.release(), prefixed?.generator.release()]);
  });

  test('the context is the generator length less the adapter\'s virtual positions', () => {
    expect(base.context).toBe(512);
    expect(prefixed.context).toBe(512 - 5); // the fixture's num_virtual_tokens
    expect(base.stopIds).toEqual(expect.arrayContaining([1, 2]));
  });

  test('max tokens and the end of the context finish with length; the stream of text is the text', async () => {
    const prompt = base.tokenizer.encode('Once upon a time');
    const pieces: string[] = [];
    const r = await complete(base, { ...greedy, promptIds: prompt, maxTokens: 12 }, (t) => pieces.push(t));
    expect(r).toMatchObject({ finishReason: 'length', completionTokens: 12 });
    expect(pieces.join('')).toBe(r.text);
    const nearlyFull = [...prompt, ...new Array<number>(base.context - prompt.length - 3).fill(prompt[1]!)];
    const atEnd = await complete(base, { ...greedy, promptIds: nearlyFull, maxTokens: 50 });
    expect(atEnd.completionTokens).toBeLessThanOrEqual(3); // only 3 positions were left
    expect(atEnd.finishReason).toBe(atEnd.completionTokens === 3 ? 'length' : 'stop');
  });

  test('a stop token finishes with stop', async () => {
    // Greedy stories260k ends its first story with EOS well within 400 tokens.
    const r = await complete(base, { ...greedy, promptIds: [1], maxTokens: 400 });
    expect(r.finishReason).toBe('stop');
    expect(r.completionTokens).toBeLessThan(400);
  });

  test('an aborted signal ends decoding at the next token', async () => {
    const abort = new AbortController();
    let pieces = 0;
    const r = await complete(base, { ...greedy, temperature: 1, promptIds: [1], maxTokens: 300, signal: abort.signal }, () => {
      if (++pieces === 3) abort.abort();
    });
    expect(r.completionTokens).toBeLessThan(10);
    const never = await complete(base, { ...greedy, promptIds: [1], maxTokens: 300, signal: abort.signal });
    expect(never.completionTokens).toBe(0);
  });
});
