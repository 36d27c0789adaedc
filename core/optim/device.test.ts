/**
 * The device optimizer (update graphs on onnxruntime-node) against the JavaScript optimizers it must reproduce:
 * AdamW, SGD and global-norm clipping over several steps on random tensors of several sizes, state dicts in both
 * directions, bit-exact resume, and a short stories260k run with train.optimizerOn 'device' against 'host'.
 *
 * Tolerance: the reference evaluates each element in float64 and rounds once; the graph rounds after every float32
 * operation, so each step may differ by a few float32 ulps of the values involved (6e-8 relative each). Tensors are
 * compared by max |device - host| / max |host| <= 1e-6 after 6 steps (measured: 1-2e-7), and <= 2e-6 after 50 steps. The error is relative to the
 * tensor's scale, not to each element: where a moment crosses zero (b = 0.9 b + d cancelling) the element's own
 * relative error is large while its absolute error is still a few ulps of the terms that cancelled.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { seededRandom } from '../generate/sampling.ts';
import { train } from '../train/trainer.ts';
import { fullFinetune } from '../../plugins/index.ts';
import {
  bitDifferences, quiet, readJsonl, removeTempDirs, silentProgress, storiesMissing, tempDir, tinyConfig, writeTinyData,
} from '../../tests/train/helpers.ts';
import { AdamW, DeviceOptimizer, SGD, clipGradNorm, type DeviceOptions, type Optimizer, type OptimizerStateDict } from './index.ts';
import { holdOutputs } from '../../runners/holding.ts';
import { ortNodeRunner } from '../../runners/ort-node.ts';
import type { Runner } from '../../runners/types.ts';

const TOLERANCE = 1e-6;
const STEPS = 6;
/** After 50 steps, with clipping: measured 7.2e-7 (AdamW) and 3.7e-7 (SGD, Nesterov). */
const LONG_TOLERANCE = 2e-6;
const LRS = [1e-2, 2e-2, 1.5e-2, 5e-3, 1e-2, 8e-3, 1e-2, 1e-2];

/** Shapes of several ranks and sizes; the rank-1 one and the `norm` name fall out of the default decay group. */
const SHAPES: Record<string, number[]> = {
  'layers.0.q_proj.weight': [48, 32],
  'layers.0.input_layernorm.weight': [32],
  'embed.weight': [100, 16],
  'head.bias': [3, 5],
  'tiny.weight': [1, 1],
  'big.weight': [3, 1000],
};

function normal(random: () => number, n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return out;
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const copy = (m: ReadonlyMap<string, Float32Array>) => new Map([...m].map(([k, v]) => [k, v.slice()]));

function initialParams(seed: number): Map<string, Float32Array> {
  const random = seededRandom(seed);
  return new Map(Object.entries(SHAPES).map(([n, s]) => [n, normal(random, sizeOf(s), 0.5)]));
}

/** Gradients of step k: a few tiny entries (so eps matters) and a per-step scale that makes clipping bite on some. */
function gradsAt(k: number, scale = 1): Map<string, Float32Array> {
  const random = seededRandom(1000 + k);
  return new Map(Object.entries(SHAPES).map(([n, s]) => {
    const g = normal(random, sizeOf(s), scale * (0.2 + 0.3 * (k % 3)));
    g[0] = 1e-9 * (k + 1);
    return [n, g];
  }));
}

/** max |a - e| / max |e| over a tensor (see the file comment). */
function worstError(actual: Float32Array, expected: Float32Array): number {
  let peak = 0, worst = 0;
  for (let i = 0; i < expected.length; i++) {
    peak = Math.max(peak, Math.abs(expected[i]!));
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  }
  return peak === 0 ? worst : worst / peak;
}

/** Worst error over every parameter and every state array. */
function compare(device: { params: Map<string, Float32Array>; opt: Optimizer }, host: { params: Map<string, Float32Array>; opt: Optimizer }): number {
  let worst = 0;
  for (const [n, p] of host.params) worst = Math.max(worst, worstError(device.params.get(n)!, p));
  const ds = device.opt.stateDict(), hs = host.opt.stateDict();
  expect(Object.keys(ds).sort()).toEqual(Object.keys(hs).sort());
  for (const [k, v] of Object.entries(hs)) {
    if (v instanceof Float32Array) worst = Math.max(worst, worstError(ds[k] as Float32Array, v));
    else expect(ds[k]).toBe(v);
  }
  return worst;
}

interface Trial { device: DeviceOptimizer; host: Optimizer; maxNorm?: number | null; gradScale?: number; steps?: number }

/** Runs both optimizers from the same parameters on the same gradients; returns both sides and the gradient norms. */
async function trial({ device, host, maxNorm = null, gradScale = 1, steps = STEPS }: Trial) {
  const d = { params: initialParams(7), opt: device as Optimizer, norms: [] as number[] };
  const h = { params: initialParams(7), opt: host, norms: [] as number[] };
  for (let k = 0; k < steps; k++) {
    const g = gradsAt(k, gradScale);
    const hg = copy(g);
    if (maxNorm !== null) h.norms.push(clipGradNorm(hg.values(), maxNorm).norm);
    await host.step(h.params, hg, LRS[k % LRS.length]!);
    const r = await device.clipAndStep(d.params, g, LRS[k % LRS.length]!, maxNorm);
    if (maxNorm !== null) d.norms.push(r.norm!);
  }
  await device.syncState(); // moments held by the runner (the bucket path) come back for the comparison
  return { d, h, worst: compare(d, h) };
}

/** onnxruntime-node with the fed-back outputs held in its sessions, as the sidecar holds them: the bucket path, here. */
const holdingRunner = (): Runner => {
  const base = ortNodeRunner();
  return {
    name: 'onnxruntime-node, holding', holdsOutputs: true,
    load: async (step, { feedback } = {}) => holdOutputs(await base.load(step), step, feedback ?? {}, 'holding runner'),
  };
};

const shapes = SHAPES;
const devices: DeviceOptimizer[] = [];
const track = (o: DeviceOptimizer) => { devices.push(o); return o; };
afterAll(async () => {
  for (const o of devices) await o.release();
  removeTempDirs();
});

describe('DeviceOptimizer AdamW matches adamw.ts', () => {
  for (const [label, opts] of [
    ['defaults, no weight decay', {}],
    ['weight decay 0.1 (default policy: not on norms, biases, rank 1)', { weightDecay: 0.1 }],
    ['betas (0.8, 0.95), eps 1e-6, weight decay 0.01', { beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.01 }],
  ] as const) {
    test(label, async () => {
      const { worst } = await trial({ device: track(DeviceOptimizer.adamw(opts, { shapes })), host: new AdamW(opts, { shapes }) });
      expect(worst).toBeLessThan(TOLERANCE);
    });
  }

  test('the comparison can fail: dropping bias correction or decay is far outside the tolerance', async () => {
    // One step from zero moments: m = 0.1 g, v = 0.001 g^2, so with bias correction the step is lr·g/(|g| + eps) and
    // without it about lr·0.1/sqrt(0.001) ≈ 3.2× larger; decay moves every decayed entry by lr·wd·p.
    const lr = 0.01, wd = 0.5, p0 = Float32Array.of(1.5, -2, 0.75), g = Float32Array.of(0.3, -0.2, 0.01);
    const p = p0.slice();
    await track(DeviceOptimizer.adamw({ weightDecay: wd }, { decay: () => true })).step(new Map([['w', p]]), new Map([['w', g]]), lr);
    const corrected = Float32Array.from(p0, (x, i) => x * (1 - lr * wd) - (lr * g[i]!) / (Math.abs(g[i]!) + 1e-8));
    const uncorrected = Float32Array.from(p0, (x, i) => x * (1 - lr * wd) - (lr * 0.1 * g[i]!) / (Math.sqrt(0.001) * Math.abs(g[i]!) + 1e-8));
    const undecayed = Float32Array.from(p0, (x, i) => x - (lr * g[i]!) / (Math.abs(g[i]!) + 1e-8));
    expect(worstError(p, corrected)).toBeLessThan(TOLERANCE);
    expect(worstError(p, uncorrected)).toBeGreaterThan(1000 * TOLERANCE);
    expect(worstError(p, undecayed)).toBeGreaterThan(1000 * TOLERANCE);
  });
});

describe('DeviceOptimizer SGD matches sgd.ts', () => {
  for (const [label, opts] of [
    ['plain, weight decay 0.01', { weightDecay: 0.01 }],
    ['momentum 0.9', { momentum: 0.9 }],
    ['Nesterov momentum 0.9, weight decay 0.01', { momentum: 0.9, nesterov: true, weightDecay: 0.01 }],
    ['momentum 0.8, dampening 0.1, weight decay 0.05', { momentum: 0.8, dampening: 0.1, weightDecay: 0.05 }],
  ] as const) {
    test(label, async () => {
      const { worst } = await trial({ device: track(DeviceOptimizer.sgd(opts, { shapes })), host: new SGD(opts, { shapes }) });
      expect(worst).toBeLessThan(TOLERANCE);
    });
  }
});

describe('over 50 steps the graphs stay within float32 rounding of the JavaScript optimizers', () => {
  // Each step's rounding differences feed the next step (parameters, moments), so they add up rather than stay at
  // one step's few ulps; the measured worst is printed.
  for (const [label, make] of [
    ['AdamW, weight decay 0.1, clipping at 1', () => ({ device: DeviceOptimizer.adamw({ weightDecay: 0.1 }, { shapes }), host: new AdamW({ weightDecay: 0.1 }, { shapes }) as Optimizer, maxNorm: 1 })],
    ['SGD, Nesterov momentum 0.9, weight decay 0.01, clipping at 1, in pieces of 700', () => ({ device: DeviceOptimizer.sgd({ momentum: 0.9, nesterov: true, weightDecay: 0.01 }, { shapes }, { pieceElements: 700 }), host: new SGD({ momentum: 0.9, nesterov: true, weightDecay: 0.01 }, { shapes }) as Optimizer, maxNorm: 1 })],
  ] as const) {
    test(label, async () => {
      const { device, host, maxNorm } = make();
      track(device);
      const { worst } = await trial({ device, host, maxNorm, gradScale: 3, steps: 50 });
      console.log(`${label}: worst relative difference after 50 steps ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(LONG_TOLERANCE);
    });
  }
});

describe('clipping by global norm in the graph matches clip.ts', () => {
  const cases: [string, number, () => DeviceOptions][] = [
    ['clipped (norm above maxNorm): the norm graph, then each tensor', 1, () => ({})],
    ['clipped, in pieces of 700 elements (big.weight in 5)', 1, () => ({ pieceElements: 700 })],
    ['clipped, one bucket on a runner that holds outputs (the norm in its graph)', 1, () => ({ runner: holdingRunner() })],
    ['clipped, several buckets on a runner that holds outputs (a norm graph, then the scale fed to each)', 1, () => ({ runner: holdingRunner(), bucketBytes: 4096 })],
    ['not clipped (norm below maxNorm)', 1e4, () => ({})],
  ];
  for (const [label, maxNorm, options] of cases) {
    test(label, async () => {
      const opts = { weightDecay: 0.1 };
      const device = track(DeviceOptimizer.adamw(opts, { shapes }, options()));
      const { d, h, worst } = await trial({ device, host: new AdamW(opts, { shapes }), maxNorm, gradScale: 3 });
      expect(worst).toBeLessThan(TOLERANCE);
      d.norms.forEach((n, k) => expect(Math.abs(n - h.norms[k]!) / h.norms[k]!).toBeLessThan(TOLERANCE));
      // The case is what its label says: clipping active (or not) on every step.
      expect(h.norms.every((n) => (maxNorm === 1 ? n > 1 : n < maxNorm))).toBe(true);
    });
  }

  for (const [label, options] of [['in place', {}], ['in pieces', { pieceElements: 700 }], ['in buckets', { runner: holdingRunner(), bucketBytes: 4096 }]] as const) {
    test(`clippedGrads writes the clipped gradients back, as clip.ts scales them in place (${label})`, async () => {
      const device = track(DeviceOptimizer.sgd({ momentum: 0.9 }, { shapes }, { clippedGrads: true, ...options }));
      const g = gradsAt(0, 3), hg = copy(g);
      clipGradNorm(hg.values(), 0.5);
      await device.clipAndStep(initialParams(7), g, 0.01, 0.5);
      for (const [n, x] of hg) expect(worstError(g.get(n)!, x)).toBeLessThan(TOLERANCE);
    });
  }
});

describe('state', () => {
  const make = {
    AdamW: () => [DeviceOptimizer.adamw({ weightDecay: 0.1 }, { shapes }), new AdamW({ weightDecay: 0.1 }, { shapes })] as const,
    SGD: () => [DeviceOptimizer.sgd({ momentum: 0.9, nesterov: true }, { shapes }), new SGD({ momentum: 0.9, nesterov: true }, { shapes })] as const,
  };
  for (const [kind, fresh] of Object.entries(make)) {
    test(`${kind}: saved on the device, loaded into the host optimizer (and back), the runs continue alike`, async () => {
      const [device] = fresh();
      track(device);
      const params = initialParams(7);
      for (let k = 0; k < 3; k++) await device.step(params, gradsAt(k), LRS[k]!);
      const saved = device.stateDict();
      // Same keys and kinds as the host optimizer's own dict after the same steps.
      const [, hostRef] = fresh();
      const hostParams = initialParams(7);
      for (let k = 0; k < 3; k++) await hostRef.step(hostParams, gradsAt(k), LRS[k]!);
      expect(Object.keys(saved)).toEqual(Object.keys(hostRef.stateDict()));

      const [, host] = fresh();
      host.loadStateDict(saved);
      const [device2] = fresh();
      track(device2);
      device2.loadStateDict(host.stateDict());
      const h = { params: copy(params), opt: host }, d = { params: copy(params), opt: device2 as Optimizer };
      for (let k = 3; k < STEPS; k++) {
        await host.step(h.params, gradsAt(k), LRS[k]!);
        await device2.step(d.params, gradsAt(k), LRS[k]!);
      }
      expect(compare(d, h)).toBeLessThan(TOLERANCE);
    });
  }

  test('resume on the device is bit-exact', async () => {
    const straight = track(DeviceOptimizer.adamw({ weightDecay: 0.1 }, { shapes }));
    const p = initialParams(7);
    for (let k = 0; k < STEPS; k++) await straight.clipAndStep(p, gradsAt(k, 3), LRS[k]!, 1);
    const first = track(DeviceOptimizer.adamw({ weightDecay: 0.1 }, { shapes }));
    const q = initialParams(7);
    for (let k = 0; k < 3; k++) await first.clipAndStep(q, gradsAt(k, 3), LRS[k]!, 1);
    const saved: OptimizerStateDict = first.stateDict();
    const resumed = track(DeviceOptimizer.adamw({ weightDecay: 0.1 }, { shapes }));
    resumed.loadStateDict(saved);
    for (let k = 3; k < STEPS; k++) await resumed.clipAndStep(q, gradsAt(k, 3), LRS[k]!, 1);
    for (const [n, x] of p) expect(q.get(n)).toEqual(x);
    expect(resumed.stateDict()).toEqual(straight.stateDict());
  });

  test('forget releases a tensor\'s state and its next update starts afresh (LISA)', async () => {
    const device = track(DeviceOptimizer.adamw({}, { shapes })), host = new AdamW({}, { shapes });
    const d = initialParams(7), h = initialParams(7);
    for (let k = 0; k < 2; k++) {
      await device.step(d, gradsAt(k), LRS[k]!);
      host.step(h, gradsAt(k), LRS[k]!);
    }
    const total = Object.values(SHAPES).reduce((s, x) => s + sizeOf(x), 0);
    expect(device.stateBytes()).toBe(8 * total);
    device.forget('big.weight');
    host.forget('big.weight');
    expect(device.stateBytes()).toBe(8 * (total - 3000));
    expect(Object.keys(device.stateDict()).some((key) => key.endsWith(':big.weight'))).toBe(false);
    await device.step(d, gradsAt(2), LRS[2]!);
    host.step(h, gradsAt(2), LRS[2]!);
    expect(device.stateDict()['step:big.weight']).toBe(1);
    expect(compare({ params: d, opt: device }, { params: h, opt: host })).toBeLessThan(TOLERANCE);
  });

  test('update() of one tensor with an explicit weight decay matches the host', async () => {
    const device = track(DeviceOptimizer.adamw()), host = new AdamW();
    const a = initialParams(7).get('big.weight')!, b = a.slice();
    for (let k = 0; k < 3; k++) {
      const g = gradsAt(k).get('big.weight')!;
      await device.update('w', a, g, LRS[k]!, 0.2);
      host.update('w', b, g, LRS[k]!, 0.2);
    }
    expect(worstError(a, b)).toBeLessThan(TOLERANCE);
  });

  test('errors: bad lengths, gradient without parameter, other optimizer\'s state, changed hyperparameters', async () => {
    const device = track(DeviceOptimizer.adamw({ weightDecay: 0.1 }));
    await expect(device.update('w', new Float32Array(3), new Float32Array(2))).rejects.toThrow(/gradient 2/);
    await expect(device.step(new Map(), new Map([['nope', new Float32Array(1)]]), 0.1)).rejects.toThrow(/no such parameter/);
    const host = new AdamW({ weightDecay: 0.1 });
    host.update('w', new Float32Array(4), Float32Array.of(1, 2, 3, 4), 0.1);
    expect(() => DeviceOptimizer.sgd({ momentum: 0.9 }).loadStateDict(host.stateDict())).toThrow(/unknown key/);
    expect(() => DeviceOptimizer.adamw({ weightDecay: 0.2 }).loadStateDict(host.stateDict())).toThrow(/weightDecay=0.1/);
    const { ['step:w']: _, ...noStep } = host.stateDict();
    expect(() => device.loadStateDict(noStep)).toThrow(/needs exp_avg, exp_avg_sq and step/);
    expect(device.stateBytes()).toBe(0);
  });
});

const missing = storiesMissing('the stories260k runs with train.optimizerOn');

describe.skipIf(missing)('train.optimizerOn on stories260k (full fine-tuning)', () => {
  test("'device' gives the losses of 'host' within 1e-5 over 5 steps, resumes bit-exactly, and resumes a host run", async () => {
    const dir = tempDir('device-optimizer');
    const data = writeTinyData(dir);
    // Weight decay and a clipping threshold below the gradient norms, so both are exercised.
    const config = (name: string, optimizerOn: 'host' | 'device') => tinyConfig(data, join(dir, name), {
      train: { steps: 5, optimizerOn, weightDecay: 0.1, maxGradNorm: 0.5 }, checkpoint: { every: 2, keep: 2 },
    });
    const run = (cfg: ReturnType<typeof config>, stopAfterSteps?: number) => train({
      config: cfg, plugins: [fullFinetune()], progress: silentProgress, log: quiet, ...(stopAfterSteps ? { stopAfterSteps } : {}),
    });
    const records = (cfg: ReturnType<typeof config>) => readJsonl(join(cfg.output, 'metrics.jsonl')).filter((r) => r.step! > 0 && r.loss !== undefined);

    const hostCfg = config('host', 'host'), deviceCfg = config('device', 'device');
    const host = await run(hostCfg), device = await run(deviceCfg);
    const hostLosses = records(hostCfg).map((r) => r.loss!), deviceLosses = records(deviceCfg).map((r) => r.loss!);
    expect(hostLosses.length).toBe(5);
    expect(deviceLosses.length).toBe(5);
    deviceLosses.forEach((l, k) => expect(Math.abs(l - hostLosses[k]!)).toBeLessThan(1e-5));
    expect(hostLosses.at(-1)!).toBeLessThan(hostLosses[0]!); // it trained
    // Clipping was active, and the norms computed in the graph agree with clip.ts's.
    records(hostCfg).forEach((r, k) => {
      expect(r.grad_norm!).toBeGreaterThan(0.5);
      expect(Math.abs(records(deviceCfg)[k]!.grad_norm! - r.grad_norm!) / r.grad_norm!).toBeLessThan(1e-5);
    });
    for (const [n, t] of host.trained) {
      expect(worstError(device.trained.get(n)!.data as Float32Array, t.data as Float32Array)).toBeLessThan(1e-5);
    }

    // Stopped after step 3 (latest checkpoint: step 2) and resumed: the weights of the uninterrupted device run.
    const resumedCfg = config('resumed', 'device');
    expect((await run(resumedCfg, 3)).step).toBe(3);
    const resumed = await run(resumedCfg);
    expect(resumed.finished).toBe(true);
    expect(resumed.trained.size).toBe(device.trained.size);
    expect(bitDifferences(resumed.trained, device.trained)).toEqual([]);

    // The checkpoint format is the host's: a host run stopped at step 3 resumes on the device (from step 2).
    const switched = config('switched', 'host');
    await run(switched, 3);
    const onDevice = await run({ ...switched, train: { ...switched.train, optimizerOn: 'device' } });
    expect(onDevice.finished).toBe(true);
    for (const [n, t] of host.trained) {
      expect(worstError(onDevice.trained.get(n)!.data as Float32Array, t.data as Float32Array)).toBeLessThan(1e-5);
    }
  }, 120_000);
});
