import { beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { loadTokenizer } from '../tokenizer/index.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { BatchStream, compactExample, loadDataset, makeBatches, mulberry32, padFraction, splitDataset, tokenizeDataset } from './index.ts';
import type { Batch, BatchStreamState, Example, StreamOptions } from './index.ts';
import { DATA, MODEL_DIR, sharedTest } from './test-helpers.ts';

const TOKENIZER = join(MODEL_DIR, 'tokenizer.json');
const ALPACA = join(DATA, 'alpaca', 'alpaca_data_1k.json');

/** n synthetic examples with lengths 1..40 (deterministic), token t+3 at position t, loss on the second half. */
function synthetic(n: number): Example[] {
  const rand = mulberry32(123);
  return Array.from({ length: n }, () => {
    const len = 1 + Math.floor(rand() * 40);
    const ids = Array.from({ length: len }, (_, t) => t + 3);
    return compactExample({ inputIds: ids, labels: ids.map((id, t) => (t >= len / 2 ? id : -100)) });
  });
}

/** Plain arrays of a batch, for comparisons. */
function plain(b: Batch): { indices: number[]; ids: number[]; labels: number[]; mask: number[] } {
  return {
    indices: [...b.indices],
    ids: Array.from(b.inputIds.data, Number),
    labels: Array.from(b.labels.data, Number),
    mask: Array.from(b.attentionMask.data, Number),
  };
}

let tok: Tokenizer;
beforeAll(async () => {
  if (await Bun.file(TOKENIZER).exists()) tok = await loadTokenizer(MODEL_DIR);
});

describe('makeBatches', () => {
  test('int64 [B, T] tensors, right padding, -100 labels and 0 mask on pads, token counts', () => {
    const ex: Example[] = [
      { inputIds: [1, 5, 6], labels: [-100, 5, 6] },
      { inputIds: [1, 7], labels: [-100, 7] },
    ].map(compactExample);
    const [b] = makeBatches(ex, { batchSize: 2, padId: 0, shuffle: false });
    if (b === undefined) throw new Error('no batch');
    expect([b.inputIds.dtype, b.labels.dtype, b.attentionMask.dtype]).toEqual(['int64', 'int64', 'int64']);
    expect(b.inputIds.shape).toEqual([2, 3]);
    expect(plain(b)).toEqual({ indices: [0, 1], ids: [1, 5, 6, 1, 7, 0], labels: [-100, 5, 6, -100, 7, -100], mask: [1, 1, 1, 1, 1, 0] });
    expect([b.tokenCount, b.lossTokenCount]).toEqual([5, 3]);
    const [fixed] = makeBatches(ex, { batchSize: 2, padId: 2, shuffle: false, padTo: 8 });
    expect(fixed?.inputIds.shape).toEqual([2, 8]);
    const [rounded] = makeBatches(ex, { batchSize: 2, padId: 2, shuffle: false, multipleOf: 4 });
    expect(rounded?.inputIds.shape).toEqual([2, 4]);
    expect(() => makeBatches(ex, { batchSize: 2, padId: 0, padTo: 2 })).toThrow(/truncate it first/);
    expect(() => makeBatches(ex, { batchSize: 0, padId: 0 })).toThrow(/batchSize/);
  });

  test('deterministic shuffling: same seed → same order (pinned, so across runs too); other seed → other order', () => {
    const ex = synthetic(10);
    const order = (seed: number) => makeBatches(ex, { batchSize: 4, padId: 0, seed }).map((b) => [...b.indices]);
    expect(order(7)).toEqual([[2, 0, 9, 8], [4, 6, 7, 5], [1, 3]]);
    expect(order(7)).toEqual(order(7));
    expect(order(8)).not.toEqual(order(7));
    expect(mulberry32(1)()).toBe(0.6270739405881613); // the reference mulberry32 value
    const unshuffled = makeBatches(ex, { batchSize: 4, padId: 0, shuffle: false, dropLast: true }).map((b) => [...b.indices]);
    expect(unshuffled).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
  });

  sharedTest('length bucketing reduces padding (real Alpaca examples)', [TOKENIZER, ALPACA], async () => {
    const records = (await loadDataset(ALPACA)).records.slice(0, 200);
    const { examples } = tokenizeDataset(records, tok, { maxLength: 512 });
    const opts = { batchSize: 8, padId: tok.padId ?? 0, seed: 3 };
    const plainBatches = makeBatches(examples, opts);
    const bucketed = makeBatches(examples, { ...opts, bucketByLength: true, bucketWindow: 10 });
    const [p, q] = [padFraction(plainBatches), padFraction(bucketed)];
    console.log(`pad fraction, ${examples.length} Alpaca examples, batch 8: shuffled ${(p * 100).toFixed(1)}%, bucketed ${(q * 100).toFixed(1)}%`);
    expect(q).toBeLessThan(p / 2);
    // Bucketing still covers every example exactly once, in shuffled batch order.
    expect(bucketed.flatMap((b) => b.indices).sort((a, b) => a - b)).toEqual(examples.map((_, i) => i));
    const lengths = bucketed.map((b) => b.inputIds.shape[1] as number);
    expect(lengths).not.toEqual([...lengths].sort((a, b) => a - b));
  });
});

describe('BatchStream', () => {
  const ex = synthetic(50);
  const options: StreamOptions = { batchSize: 8, padId: 0, seed: 11, bucketByLength: true, bucketWindow: 2 };

  test('epochs: each covers every example once, reshuffled per epoch; position tracks (epoch, index)', () => {
    const s = new BatchStream(ex, options);
    expect(s.batchesPerEpoch).toBe(7);
    const e0 = s.take(7).flatMap((b) => b.indices);
    expect(s.position).toEqual({ epoch: 1, index: 0, step: 7 });
    const e1 = s.take(7).flatMap((b) => b.indices);
    expect([...e0].sort((a, b) => a - b)).toEqual(ex.map((_, i) => i));
    expect([...e1].sort((a, b) => a - b)).toEqual(ex.map((_, i) => i));
    expect(e1).not.toEqual(e0);
    expect(makeBatches(ex, options).flatMap((b) => b.indices)).toEqual(e0); // makeBatches = epoch 0
  });

  test('state() / restore() continues with identical batches, across epoch boundaries', () => {
    const a = new BatchStream(ex, options);
    a.take(5);
    const saved = JSON.parse(JSON.stringify(a.state())) as BatchStreamState; // as stored in a checkpoint
    const rest = a.take(12).map(plain);
    const b = BatchStream.restore(ex, options, saved);
    expect(b.position).toEqual({ epoch: 0, index: 5, step: 5 });
    expect(b.take(12).map(plain)).toEqual(rest);
    expect(saved).toMatchObject(new BatchStream(ex, options, saved).position);
    expect(() => BatchStream.restore(ex.slice(1), options, saved)).toThrow(/other examples or options/);
    expect(() => BatchStream.restore(ex, { ...options, seed: 12 }, saved)).toThrow(/other examples or options/);
  });

  test('drawRandom: batches drawn with replacement from a seeded RNG, resumable', () => {
    const opts = { ...options, drawRandom: true, batchSize: 16 };
    const a = new BatchStream(ex, opts);
    const first = a.take(3).map(plain);
    const saved = a.state();
    const next = a.take(4).map(plain);
    expect(BatchStream.restore(ex, opts, saved).take(4).map(plain)).toEqual(next);
    expect(new BatchStream(ex, opts).take(3).map(plain)).toEqual(first);
    expect(first.every((b) => b.indices.length === 16)).toBe(true);
    const drawn = first.flatMap((b) => b.indices);
    expect(new Set(drawn).size).toBeLessThan(drawn.length); // with replacement: 48 draws from 50 repeat some
  });
});

describe('splitDataset', () => {
  test('evalFraction / evalCount, disjoint, order kept, deterministic by seed', () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    const s = splitDataset(items, { evalFraction: 0.1, seed: 5 });
    expect(s.eval).toHaveLength(10);
    expect(s.train).toHaveLength(90);
    expect([...s.train, ...s.eval].sort((a, b) => a - b)).toEqual(items);
    expect(s.eval).toEqual([...s.eval].sort((a, b) => a - b));
    expect(splitDataset(items, { evalFraction: 0.1, seed: 5 })).toEqual(s);
    expect(splitDataset(items, { evalFraction: 0.1, seed: 6 }).eval).not.toEqual(s.eval);
    expect(splitDataset(items, { evalCount: 3 }).eval).toHaveLength(3);
    expect(splitDataset([1, 2], { evalFraction: 0.01 }).eval).toHaveLength(1);
    expect(() => splitDataset(items, { evalCount: 3, evalFraction: 0.1 })).toThrow(/exactly one/);
    expect(() => splitDataset(items, { evalCount: 101 })).toThrow(/exceeds/);
  });
});
