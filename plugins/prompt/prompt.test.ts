/** Prompt tuning's starts: text tokens repeated or cut to the length (as PEFT's TEXT init), sampled vocabulary. */
import { expect, test } from 'bun:test';
import { baseWeightsOf, hostTensor, paramSpecs, parseConfig, type PluginContext } from '../../core/index.ts';
import { promptSchema } from './config.ts';
import { embeddingRows, initTokenIds } from './table.ts';

const config = parseConfig({ architectures: ['LlamaForCausalLM'], vocab_size: 10, hidden_size: 4, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2 });
const ctx = (encode: (t: string) => number[]): PluginContext => ({
  model: { config, specs: paramSpecs(config) }, run: { dir: '', seed: 4, totalSteps: 1 }, phase: 'train', log: () => {}, plugin: () => undefined,
  tokenizer: { encode },
});

test("init 'text': the text's ids (special tokens included) repeated, or cut, to virtualTokens", () => {
  const encode = () => [1, 7, 8];
  expect(initTokenIds(ctx(encode), promptSchema.parse({ virtualTokens: 7, init: 'text', initText: 'hi' }))).toEqual([1, 7, 8, 1, 7, 8, 1]);
  expect(initTokenIds(ctx(encode), promptSchema.parse({ virtualTokens: 2, init: 'text', initText: 'hi' }))).toEqual([1, 7]);
});

test("init 'vocab': ids sampled in range, reproducible from the seed", () => {
  const cfg = promptSchema.parse({ virtualTokens: 50, init: 'vocab' });
  const a = initTokenIds(ctx(() => []), cfg);
  expect(a).toEqual(initTokenIds(ctx(() => []), cfg));
  expect(a.every((i) => Number.isInteger(i) && i >= 0 && i < 10)).toBe(true);
  expect(new Set(a).size).toBeGreaterThan(5);
});

test('embedding rows are copied from the token table', async () => {
  const table = hostTensor('float32', [10, 4], Array.from({ length: 40 }, (_, i) => i));
  const rows = await embeddingRows(baseWeightsOf(new Map([['model.embed_tokens.weight', table]])), [3, 0, 3], 4);
  expect(rows.shape).toEqual([3, 4]);
  expect([...(rows.data as Float32Array)]).toEqual([12, 13, 14, 15, 0, 1, 2, 3, 12, 13, 14, 15]);
});

test('options are checked: text needs initText, P-tuning starts random', () => {
  expect(() => promptSchema.parse({ init: 'text' })).toThrow(/initText/);
  expect(() => promptSchema.parse({ init: 'vocab', encoder: 'mlp' })).toThrow(/P-tuning/);
});
