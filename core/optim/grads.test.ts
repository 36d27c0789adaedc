/** Gradient clipping and token-weighted gradient accumulation. */
import { expect, test } from 'bun:test';
import { GradAccumulator, clipGradNorm } from './index.ts';

test('clipGradNorm scales by maxNorm / (norm + 1e-6) above maxNorm, in place', () => {
  const grads = new Map([['a', Float32Array.of(3, 4)], ['b', Float32Array.of(12)]]);
  const { norm, scale } = clipGradNorm(grads.values(), 1); // a one-shot iterator is fine
  expect(norm).toBe(13);
  expect(scale).toBe(1 / (13 + 1e-6));
  expect([...grads.get('a')!, ...grads.get('b')!]).toEqual([3, 4, 12].map((x) => Math.fround(x * scale)));
});

test('clipGradNorm leaves small gradients alone and reports non-finite norms like torch', () => {
  const g = Float32Array.of(0.3, -0.4);
  const small = clipGradNorm([g], 1);
  expect(small.scale).toBe(1);
  expect(small.norm).toBeCloseTo(0.5, 7);
  expect(g).toEqual(Float32Array.of(0.3, -0.4));
  expect(clipGradNorm([Float32Array.of(1, NaN)], 1).scale).toBeNaN();
  expect(clipGradNorm([Float32Array.of(1, Infinity)], 1)).toEqual({ norm: Infinity, scale: 0 });
  expect(() => clipGradNorm([g], -1)).toThrow();
});

test('clipGradNorm accumulates in float64 (a float32 sum of squares would overflow)', () => {
  const g = new Float32Array(5).fill(1e30);
  expect(clipGradNorm([g], 1).norm).toBeCloseTo(Math.sqrt(5) * Math.fround(1e30), -24);
});

/** Toy model: loss = mean over tokens of 0.5 (w . x_t - y_t)^2; gradient over a set of tokens, in float64. */
const D = 4;
const token = (t: number) => ({ x: Array.from({ length: D }, (_, d) => Math.sin(t * 7 + d * 3)), y: Math.cos(t) });
const w = [0.3, -0.2, 0.5, 0.1];
function meanLossGrad(tokens: number[]): number[] {
  const g = new Array<number>(D).fill(0);
  for (const t of tokens) {
    const { x, y } = token(t);
    const r = x.reduce((s, xd, d) => s + xd * w[d]!, 0) - y;
    x.forEach((xd, d) => { g[d]! += (r * xd) / tokens.length; });
  }
  return g;
}

test('accumulated micro-batch gradients equal the large-batch gradient of the mean loss', () => {
  const micro = [[0, 1, 2], [3, 4, 5, 6, 7], [8], []];
  const acc = new GradAccumulator();
  for (const tokens of micro) {
    const g = tokens.length ? Float32Array.from(meanLossGrad(tokens)) : Float32Array.of(NaN, NaN, NaN, NaN);
    acc.add({ w: g }, tokens.length);
  }
  expect(acc.tokenCount).toBe(9);
  expect(acc.microBatches).toBe(4);
  const got = acc.result().get('w')!, want = meanLossGrad(micro.flat());
  want.forEach((e, d) => expect(Math.abs(got[d]! - e)).toBeLessThan(1e-6 * Math.max(Math.abs(e), 1e-3)));
  // An equal-weight average of the micro-batch gradients is not the large-batch gradient.
  const naive = [0, 1, 2].map((i) => meanLossGrad(micro[i]!)).reduce((a, b) => a.map((x, d) => x + b[d]! / 3), [0, 0, 0, 0]);
  expect(Math.max(...naive.map((x, d) => Math.abs(x - want[d]!)))).toBeGreaterThan(1e-3);
  expect(acc.result().get('w')).toBe(got); // idempotent, same buffer
  expect(() => acc.add({ w: got }, 1)).toThrow(/reset/);
});

test('reset reuses zeroed buffers; result without tokens is an error', () => {
  const acc = new GradAccumulator();
  acc.add(new Map([['w', Float32Array.of(1, 2)]]), 2);
  const first = acc.result().get('w')!;
  acc.reset();
  expect(() => acc.result()).toThrow(/no loss tokens/);
  acc.add(new Map([['w', Float32Array.of(5, 6)]]), 3);
  expect(acc.result().get('w')).toBe(first);
  expect(first).toEqual(Float32Array.of(5, 6));
  expect(acc.bytes()).toBe(8);
  acc.reset(true);
  expect(acc.bytes()).toBe(0);
  expect(() => acc.add({ w: new Float32Array(2) }, 1.5)).toThrow();
});
