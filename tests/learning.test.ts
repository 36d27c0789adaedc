/** Small models trained through the public API on synthetic data reach losses that prove learning. */
import { expect, test } from 'bun:test';
import { AdamW, compile, gradName, hostTensor, nn, op, trace, valueAndGrad } from '../core/index.ts';
import { normal, rng } from './gradcheck.ts';
import { COPY, trainCopyTask } from '../examples/copy-task.ts';

test('a two-layer MLP learns a teacher classifier', async () => {
  const [D, Hd, K, B] = [8, 32, 4, 64];
  const g = trace((g) => {
    const x = g.input('x', 'float32', ['B', D]);
    const y = g.input('y', 'int64', ['B']);
    const w1 = g.input('w1', 'float32', [Hd, D]), b1 = g.input('b1', 'float32', [Hd]);
    const w2 = g.input('w2', 'float32', [K, Hd]), b2 = g.input('b2', 'float32', [K]);
    const logits = nn.linear(op.tanh(nn.linear(x, w1, b1)), w2, b2);
    return { loss: nn.crossEntropy(logits, y) };
  });
  const wrt = ['w1', 'b1', 'w2', 'b2'];
  const exe = await compile(valueAndGrad(g, { of: 'loss', wrt }), { dims: { B } });
  const rand = rng(7);
  const randn = (n: number, s: number) => Array.from({ length: n }, () => s * normal(rand));
  const teacher = randn(K * D, 1);
  const params = {
    w1: hostTensor('float32', [Hd, D], randn(Hd * D, 1 / Math.sqrt(D))), b1: hostTensor('float32', [Hd]),
    w2: hostTensor('float32', [K, Hd], randn(K * Hd, 1 / Math.sqrt(Hd))), b2: hostTensor('float32', [K]),
  };
  const opt = new AdamW({ lr: 1e-2 });
  const losses: number[] = [];
  for (let step = 0; step < 300; step++) {
    const x = randn(B * D, 1);
    const y = Array.from({ length: B }, (_, b) => {
      const scores = Array.from({ length: K }, (_, k) => x.slice(b * D, b * D + D).reduce((s, v, d) => s + v * teacher[k * D + d]!, 0));
      return scores.indexOf(Math.max(...scores));
    });
    const out = await exe.run({ ...params, x: hostTensor('float32', [B, D], x), y: hostTensor('int64', [B], y) });
    losses.push(Number(out.loss!.data[0]));
    for (const n of wrt) opt.update(n, params[n as keyof typeof params].data as Float32Array, out[gradName(n)]!.data as Float32Array);
  }
  const last = losses.slice(-20).reduce((a, b) => a + b, 0) / 20;
  expect(losses[0]!).toBeGreaterThan(1.0); // chance is ln 4 = 1.39
  expect(last).toBeLessThan(0.35);
});

test('a one-block causal transformer learns to copy a sequence', async () => {
  const losses = await trainCopyTask(150, 0);
  const chance = Math.log(COPY.vocab - 1);
  expect(losses[0]!).toBeGreaterThan(0.8 * chance);
  expect(Math.max(...losses.slice(-10))).toBeLessThan(0.05);
});
