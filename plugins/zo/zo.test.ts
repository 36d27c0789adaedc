/** The zeroth-order family: estimates, update rules, training, resume, and the planner's view of its memory. */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { compile, gradName, hostTensor, trace, valueAndGrad, type HostTensor } from '../../core/index.ts';
import { buildCausalLM, causalLMLoss } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import { planMemory } from '../../core/memory/index.ts';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune } from '../full/index.ts';
import { lora } from '../lora/index.ts';
import { zoSchema } from './config.ts';
import { zo } from './index.ts';
import { forEachNormal, tensorSeed } from './normal.ts';
import { applyUpdate, perturb } from './update.ts';
import { bitDifferences, quiet, removeTempDirs, silentProgress, STORIES, tempDir, tinyConfig, writeTinyData } from '../../tests/train/helpers.ts';

const missing = !existsSync(join(STORIES, 'config.json'));
if (missing) console.warn(`skipping model-based ZO tests: ${STORIES} is absent`);
afterAll(removeTempDirs);

const z = (seed: number, index: number, n: number) => {
  const out = new Float64Array(n);
  forEachNormal(tensorSeed(seed, index), n, (v, i) => { out[i] = v; });
  return out;
};

describe('update rules against their formulas', () => {
  const start = () => [{ name: 'a', data: Float32Array.from([0.5, -1, 2]) }, { name: 'b', data: Float32Array.from([3, 0.25]) }];
  const queries = [{ seed: 11, g: 0.8 }, { seed: 12, g: -0.3 }];
  const lr = 0.1;
  const estimate = (index: number, n: number) => {
    const [z1, z2] = [z(11, index, n), z(12, index, n)];
    return Array.from({ length: n }, (_, i) => (0.8 * z1[i]! - 0.3 * z2[i]!) / 2);
  };

  test('sgd and sign', () => {
    for (const variant of ['sgd', 'sign'] as const) {
      const p = start();
      applyUpdate(zoSchema.parse({ variant }), { step: 0 }, p, queries, lr);
      p.forEach(({ data }, index) => {
        const [z1, z2] = [z(11, index, data.length), z(12, index, data.length)];
        const init = start()[index]!.data;
        data.forEach((v, i) => {
          const step = variant === 'sgd' ? (0.8 * z1[i]! - 0.3 * z2[i]!) / 2 : (z1[i]! - z2[i]!) / 2;
          expect(v).toBeCloseTo(init[i]! - lr * step, 5);
        });
      });
    }
  });

  test('momentum and adam over two steps', () => {
    const mmt = zoSchema.parse({ variant: 'mmt', momentum: 0.9 });
    const adam = zoSchema.parse({ variant: 'adam' });
    for (const cfg of [mmt, adam]) {
      const p = start();
      const state = { step: 0 };
      applyUpdate(cfg, state, p, queries, lr);
      applyUpdate(cfg, state, p, queries, lr);
      p.forEach(({ data }, index) => {
        const g = estimate(index, data.length);
        const init = start()[index]!.data;
        data.forEach((v, i) => {
          let expected: number;
          if (cfg.variant === 'mmt') expected = init[i]! - lr * g[i]! - lr * (0.9 * g[i]! + g[i]!);
          else {
            const m1 = 0.1 * g[i]!, v1 = 0.001 * g[i]! ** 2;
            const x1 = init[i]! - (lr * m1 / 0.1) / (Math.sqrt(v1 / 0.001) + 1e-8);
            const m2 = 0.9 * m1 + 0.1 * g[i]!, v2 = 0.999 * v1 + 0.001 * g[i]! ** 2;
            expected = x1 - (lr * m2 / (1 - 0.81)) / (Math.sqrt(v2 / (1 - 0.999 ** 2)) + 1e-8);
          }
          expect(v).toBeCloseTo(expected, 4);
        });
      });
    }
  });

  test('perturbing and un-perturbing returns the parameters (to float32 rounding)', () => {
    const p = [{ data: Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i)) }];
    const before = new Float32Array(p[0]!.data);
    perturb(p, 99, 1e-3);
    perturb(p, 99, -2e-3);
    perturb(p, 99, 1e-3);
    p[0]!.data.forEach((v, i) => expect(Math.abs(v - before[i]!)).toBeLessThan(1e-6));
  });
});

describe.skipIf(missing)('on stories260k', () => {
  test('the two-sided estimate is the directional derivative along z', async () => {
    const { config, weights } = await loadModel(STORIES);
    const graph = trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, config, { batch: 2, seq: 16 })) }));
    const names = [...weights.keys()];
    const ids = hostTensor('int64', [2, 16], Array.from({ length: 32 }, (_, i) => (i * 13 + 7) % 512));
    const labels = hostTensor('int64', [2, 16], Array.from({ length: 32 }, (_, i) => (i * 5 + 1) % 512));
    const params = new Map([...weights].map(([n, t]) => [n, { ...t, data: new Float32Array(t.data as Float32Array) } as HostTensor]));
    const grad = await compile(valueAndGrad(graph, { of: 'loss', wrt: names }));
    const out = await grad.run({ ...Object.fromEntries(params), input_ids: ids, labels });
    const seed = 1234;
    let directional = 0, gradSq = 0, zSq = 0;
    names.forEach((n, index) => {
      const g = out[gradName(n)]!.data as Float32Array;
      forEachNormal(tensorSeed(seed, index), g.length, (zi, i) => {
        directional += g[i]! * zi;
        gradSq += g[i]! ** 2;
        zSq += zi * zi;
      });
    });
    const fwd = await compile(graph);
    const f = async () => Number((await fwd.run({ ...Object.fromEntries(params), input_ids: ids, labels })).loss!.data[0]);
    const list = names.map((name) => ({ name, data: params.get(name)!.data as Float32Array }));
    const eps = 1e-3;
    perturb(list, seed, eps);
    const plus = await f();
    perturb(list, seed, -2 * eps);
    const minus = await f();
    const estimate = (plus - minus) / (2 * eps);
    // The error of a central difference grows with the step's length ε|z|, so it is measured against |∇f|·|z|
    // (the size of ∇f·z when z is aligned with the gradient), not against ∇f·z, which may be near zero.
    const scale = Math.sqrt(gradSq * zSq);
    console.log(`ZO estimate ${estimate.toFixed(4)} vs backprop ∇f·z ${directional.toFixed(4)} (|∇f||z| = ${scale.toFixed(1)})`);
    expect(Math.abs(estimate - directional) / scale).toBeLessThan(2e-5);
    expect(Math.sign(estimate)).toBe(Math.sign(directional));
    await Promise.all([grad.release(), fwd.release()]);
  });

  test('ZO-SGD lowers the loss of a fixed batch (forward passes only)', async () => {
    const dir = tempDir('zo');
    const data = writeTinyData(dir, 4);
    const cfg = tinyConfig(data, join(dir, 'run'), { train: { steps: 40, batchSize: 4, lr: 2e-4, schedule: 'constant', maxGradNorm: null } });
    const losses: number[] = [];
    const probe = { name: 'probe', 'step:after': (_ctx: unknown, r: { loss: number }) => { losses.push(r.loss); } };
    await train({ config: cfg, plugins: [fullFinetune(), zo({ eps: 1e-3, queries: 4 }), probe], resume: false, log: quiet, progress: silentProgress });
    const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5, last = losses.slice(-5).reduce((a, b) => a + b) / 5;
    console.log(`ZO-SGD: loss ${first.toFixed(4)} -> ${last.toFixed(4)} over 40 steps`);
    expect(last).toBeLessThan(first - 0.05);
  }, 60_000);

  test('ZO-MMT with LoRA resumes bit-exactly (momentum buffers in the checkpoint)', async () => {
    const dir = tempDir('zo-resume');
    const data = writeTinyData(dir, 16);
    const plugins = () => [lora({ r: 4, targets: ['q_proj', 'v_proj'] }), zo({ variant: 'mmt', eps: 1e-2 })];
    const base = { train: { steps: 8, batchSize: 4, lr: 1e-3 }, checkpoint: { every: 3 } };
    const whole = await train({ config: tinyConfig(data, join(dir, 'a'), base), plugins: plugins(), resume: false, log: quiet, progress: silentProgress });
    const cfgB = tinyConfig(data, join(dir, 'b'), base);
    await train({ config: cfgB, plugins: plugins(), resume: false, stopAfterSteps: 5, log: quiet, progress: silentProgress });
    const resumed = await train({ config: cfgB, plugins: plugins(), log: quiet, progress: silentProgress });
    expect(bitDifferences(whole.trained, resumed.trained)).toEqual([]);
  }, 60_000);

  test('the planner sees a forward-only step: no gradients, no optimizer state', async () => {
    const dir = tempDir('zo-plan');
    const cfg = tinyConfig(writeTinyData(dir, 4), join(dir, 'run'));
    const withZo = await planMemory(cfg, [fullFinetune(), zo()]);
    const backprop = await planMemory(cfg, [fullFinetune()]);
    const names = withZo.items.map((i) => i.component);
    expect(names.some((n) => n.startsWith('gradients'))).toBe(false);
    expect(names.some((n) => n.startsWith('optimizer'))).toBe(false);
    expect(withZo.totalBytes).toBeLessThan(backprop.totalBytes);
  });
});
