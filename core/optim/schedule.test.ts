/** Learning-rate schedules at specific steps, against the Hugging Face transformers formulas. */
import { expect, test } from 'bun:test';
import { lrAt, lrMultiplier, warmupStepsOf, type LrScheduleInput } from './index.ts';

const at = (schedule: LrScheduleInput, steps: number[], total = 100) => steps.map((s) => lrMultiplier(s, total, schedule));

test('linear warmup is shared by every kind and starts at 0', () => {
  for (const kind of ['constant', 'linear', 'cosine'] as const) {
    expect(at({ kind, lr: 1, warmupSteps: 10 }, [0, 1, 5, 9, 10])).toEqual([0, 0.1, 0.5, 0.9, 1]);
  }
});

test('constant', () => {
  expect(at({ kind: 'constant', lr: 1, warmupSteps: 10 }, [50, 100, 150])).toEqual([1, 1, 1]);
  expect(at({ kind: 'constant', lr: 1 }, [0, 7])).toEqual([1, 1]);
});

test('linear decays to 0 at totalSteps and stays there', () => {
  expect(at({ kind: 'linear', lr: 1, warmupSteps: 10 }, [55, 82, 100, 120])).toEqual([0.5, 0.2, 0, 0]);
  expect(at({ kind: 'linear', lr: 1 }, [0, 25])).toEqual([1, 0.75]);
});

test('cosine follows a half cosine to minLrRatio', () => {
  const cos = at({ kind: 'cosine', lr: 1, warmupSteps: 10 }, [10, 55, 100]);
  expect(cos[0]).toBe(1);
  expect(cos[1]).toBeCloseTo(0.5, 12);
  expect(cos[2]).toBeCloseTo(0, 12);
  // Without warmup, total 4: step 1 has progress 0.25 -> 0.5 * (1 + cos(pi / 4)).
  expect(lrMultiplier(1, 4, { kind: 'cosine', lr: 1 })).toBeCloseTo(0.5 * (1 + Math.SQRT1_2), 12);
  const floor = at({ kind: 'cosine', lr: 1, warmupSteps: 10, minLrRatio: 0.1 }, [10, 55, 100]);
  expect(floor[0]).toBe(1);
  expect(floor[1]).toBeCloseTo(0.55, 12);
  expect(floor[2]).toBeCloseTo(0.1, 12);
  // Past totalSteps the cosine rises again, exactly as transformers' lambda does.
  expect(lrMultiplier(145, 100, { kind: 'cosine', lr: 1, warmupSteps: 10 })).toBeCloseTo(0.5, 12);
});

test('warmupRatio rounds up and warmupSteps wins when set', () => {
  expect(warmupStepsOf(100, { kind: 'linear', lr: 1, warmupRatio: 0.1 })).toBe(10);
  expect(warmupStepsOf(30, { kind: 'linear', lr: 1, warmupRatio: 0.05 })).toBe(2);
  expect(warmupStepsOf(100, { kind: 'linear', lr: 1, warmupSteps: 3, warmupRatio: 0.5 })).toBe(3);
  expect(at({ kind: 'linear', lr: 1, warmupRatio: 0.1 }, [5, 55])).toEqual([0.5, 0.5]);
});

test('lrAt scales the multiplier by the peak lr and validates its input', () => {
  expect(lrAt(5, 100, { kind: 'linear', lr: 3e-4, warmupSteps: 10 })).toBeCloseTo(1.5e-4, 15);
  expect(() => lrAt(-1, 100, { kind: 'constant', lr: 1 })).toThrow();
  expect(() => lrAt(0, 100, { kind: 'cosine', lr: 1, minLrRatio: 2 })).toThrow();
  expect(() => lrAt(0, 100, { kind: 'step', lr: 1 } as unknown as LrScheduleInput)).toThrow();
});
