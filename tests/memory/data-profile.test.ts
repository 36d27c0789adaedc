/** profileRunData: the shapes and sizes the planner takes from a run's tokenised data. */
import { expect, test } from 'bun:test';
import { profileRunData } from '../../core/memory/index.ts';
import type { Example } from '../../core/data/example.ts';
import type { RunData } from '../../core/train/setup.ts';

const ex = (n: number): Example => ({ inputIds: new Int32Array(n).fill(3), labels: new Int32Array(n).fill(-100) });
const data = (train: number[], extra: Partial<RunData> = {}): RunData => ({
  train: train.map(ex), evalExamples: [], choiceEval: [], validation: [], choiceValidation: [], ...extra,
});
const options = { batchSize: 4, microBatchSize: 4, padMultiple: 16, steps: 100, bucketByLength: false, evalBatchSize: 8 };

test('the longest padded training sequence and the tokenised bytes come from the examples', () => {
  const p = profileRunData(data([5, 17, 40, 12]), options);
  expect(p.trainT).toBe(48);
  expect(p.examples).toBe(4);
  expect(p.datasetBytes).toBe(8 * (5 + 17 + 40 + 12) + 240 * 4);
});

test('expected distinct batch shapes: random draws reach the long classes rarely, bucketing reaches each class', () => {
  // 99 short examples (one class) and 1 long one: a batch of 4 holds the long one with probability ~4%, so over
  // 100 steps it is almost surely drawn at least once (2 shapes); one step is one shape; over 10 steps, 1 + 1 - 0.96^10.
  const lengths = [...Array.from({ length: 99 }, () => 10), 100];
  expect(profileRunData(data(lengths), options).trainShapes).toBeCloseTo(2, 1);
  expect(profileRunData(data(lengths), { ...options, steps: 1 }).trainShapes).toBeCloseTo(1, 6);
  expect(profileRunData(data(lengths), { ...options, steps: 10 }).trainShapes).toBeCloseTo(2 - Math.pow(0.99 ** 4, 10), 6);
  // Micro-batches of 3 out of 4: a full one and a 1-row one per step, each with its own shapes.
  expect(profileRunData(data(lengths), { ...options, microBatchSize: 3 }).trainShapes).toBeGreaterThan(2.5);
  // Three equal classes with bucketing: every class is a batch shape.
  const three = [...Array(30).fill(10), ...Array(30).fill(20), ...Array(30).fill(40)];
  expect(profileRunData(data(three), { ...options, bucketByLength: true }).trainShapes).toBeCloseTo(3, 3);
});

test('evaluation shapes are those scoring builds: sorted by length, chunks of the eval batch size, padded', () => {
  const evalExamples = [3, 30, 5, 7, 50, 9, 11, 2, 4, 6].map(ex); // sorted: 2..11 (8 of them), then 30, 50
  const p = profileRunData(data([5], { evalExamples, choiceEval: [{ label: 0, options: [ex(20), ex(21)] }] }), options);
  expect(p.evalShapes).toEqual([{ B: 8, T: 16 }, { B: 2, T: 64 }, { B: 2, T: 32 }]);
  expect(profileRunData(data([5], { evalExamples }), { ...options, evalMaxExamples: 4 }).evalShapes).toEqual([{ B: 4, T: 32 }]);
});
