/** AdamW and SGD against float64 reference formulas, state dicts, state release and the weight-decay policy. */
import { describe, expect, test } from 'bun:test';
import { AdamW, SGD, defaultDecayPolicy, type Optimizer } from './index.ts';

const P0 = [0.5, -1.25, 2, 0.003, -0.7];
const TARGET = [1, 0.5, -1, 0, 2e-9];
/** Gradient of a toy loss at step k: sum (p - target)^2 plus a step-dependent wobble (and a tiny entry so eps matters). */
const gradAt = (p: ArrayLike<number>, k: number): number[] =>
  Array.from({ length: p.length }, (_, i) => (i === 4 ? 1e-9 * (k + 1) : 2 * (p[i]! - TARGET[i]!) + 0.1 * Math.sin(k + i)));
const LRS = [0.01, 0.02, 0.015, 0.005, 0.01];

function expectClose(actual: ArrayLike<number>, expected: readonly number[], rel = 1e-6): void {
  expected.forEach((e, i) => {
    const a = actual[i]!;
    if (Math.abs(a - e) > rel * Math.max(Math.abs(e), 1e-3)) throw new Error(`[${i}] ${a} vs reference ${e}`);
  });
}

/** AdamW as in the paper / torch docs, in float64. */
function referenceAdamW(b1: number, b2: number, eps: number, wd: number): number[] {
  const p = [...P0], m = P0.map(() => 0), v = P0.map(() => 0);
  LRS.forEach((lr, k) => {
    const t = k + 1, g = gradAt(p, k);
    for (let i = 0; i < p.length; i++) {
      p[i]! *= 1 - lr * wd;
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
      const mHat = m[i]! / (1 - b1 ** t), vHat = v[i]! / (1 - b2 ** t);
      p[i]! -= (lr * mHat) / (Math.sqrt(vHat) + eps);
    }
  });
  return p;
}

/** torch.optim.SGD's documented algorithm, in float64. */
function referenceSGD(mu: number, damp: number, nesterov: boolean, wd: number): number[] {
  const p = [...P0];
  let buf: number[] | undefined;
  LRS.forEach((lr, k) => {
    const d = gradAt(p, k).map((g, i) => g + wd * p[i]!);
    buf = buf ? buf.map((b, i) => mu * b + (1 - damp) * d[i]!) : [...d];
    for (let i = 0; i < p.length; i++) p[i]! -= lr * (nesterov ? d[i]! + mu * buf[i]! : buf[i]!);
  });
  return p;
}

/** Runs the optimizer on the toy loss with `update` (explicit weight decay, no group policy). */
function run(opt: Optimizer, wd: number, p: Float32Array = Float32Array.from(P0), from = 0, to = LRS.length): Float32Array {
  for (let k = from; k < to; k++) opt.update('w', p, Float32Array.from(gradAt(p, k)), LRS[k]!, wd);
  return p;
}

describe('AdamW', () => {
  test('first step is lr * g / (|g| + eps) after decay', () => {
    const p = Float32Array.of(1, -2), g = Float32Array.of(0.5, 1e-8);
    new AdamW({ eps: 1e-8 }).update('w', p, g, 0.1, 0.5);
    expectClose(p, [1 * 0.95 - 0.1, -2 * 0.95 - 0.1 * (1e-8 / 2e-8)]);
  });
  for (const [b1, b2, eps, wd] of [[0.9, 0.999, 1e-8, 0], [0.9, 0.95, 1e-8, 0.1], [0.8, 0.99, 1e-6, 0.01]] as const) {
    test(`matches the reference for betas (${b1}, ${b2}), eps ${eps}, weight decay ${wd}`, () => {
      expectClose(run(new AdamW({ beta1: b1, beta2: b2, eps }), wd), referenceAdamW(b1, b2, eps, wd));
    });
  }
  test('update() keeps its defaults: configured lr, no weight decay unless configured', () => {
    const a = Float32Array.from(P0), b = Float32Array.from(P0), g = Float32Array.from(gradAt(P0, 0));
    new AdamW({ lr: 0.01 }).update('w', a, g);
    new AdamW().update('w', b, g, 0.01, 0);
    expect(a).toEqual(b);
  });
  test('rejects bad options and mismatched lengths', () => {
    expect(() => new AdamW({ beta1: 1 })).toThrow();
    expect(() => new AdamW().update('w', new Float32Array(3), new Float32Array(2))).toThrow(/gradient 2/);
  });
});

describe('SGD', () => {
  for (const [mu, damp, nesterov, wd] of [[0, 0, false, 0.01], [0.9, 0, false, 0], [0.9, 0, true, 0.01], [0.8, 0.1, false, 0.05]] as const) {
    test(`matches torch's algorithm for momentum ${mu}, dampening ${damp}, nesterov ${nesterov}, weight decay ${wd}`, () => {
      expectClose(run(new SGD({ momentum: mu, dampening: damp, nesterov }), wd), referenceSGD(mu, damp, nesterov, wd));
    });
  }
  test('nesterov needs momentum and no dampening', () => {
    expect(() => new SGD({ nesterov: true })).toThrow();
    expect(() => new SGD({ nesterov: true, momentum: 0.9, dampening: 0.1 })).toThrow();
  });
});

describe('state', () => {
  const make: Record<string, () => Optimizer> = {
    AdamW: () => new AdamW({ weightDecay: 0.1 }),
    SGD: () => new SGD({ momentum: 0.9, nesterov: true }),
  };
  for (const [kind, fresh] of Object.entries(make)) {
    test(`${kind}: stateDict round trip gives bit-identical later updates`, () => {
      const a = fresh();
      const p = run(a, 0.1, undefined, 0, 2);
      const saved = a.stateDict();
      const pResumed: Float32Array = p.slice();
      run(a, 0.1, p, 2, 5);
      const b = fresh();
      b.loadStateDict(saved);
      run(b, 0.1, pResumed, 2, 5);
      expect(pResumed).toEqual(p);
      expect(b.stateDict()).toEqual(a.stateDict());
    });
    test(`${kind}: forget releases state`, () => {
      const opt = fresh();
      run(opt, 0, new Float32Array(P0), 0, 1);
      opt.update('v', new Float32Array(1000), new Float32Array(1000).fill(1), 0.1);
      const per = kind === 'AdamW' ? 8 : 4;
      expect(opt.stateBytes()).toBe(per * (P0.length + 1000));
      opt.forget('v');
      expect(opt.stateBytes()).toBe(per * P0.length);
      expect(Object.keys(opt.stateDict()).some((k) => k.endsWith(':v'))).toBe(false);
    });
  }
  test('loading checks keys and hyperparameters before changing anything', () => {
    const a = new AdamW({ weightDecay: 0.1 });
    run(a, 0.1);
    expect(() => new SGD({ momentum: 0.9 }).loadStateDict(a.stateDict())).toThrow(/unknown key/);
    expect(() => new AdamW({ weightDecay: 0.2 }).loadStateDict(a.stateDict())).toThrow(/weightDecay=0.1/);
    const { ['step:w']: _, ...noStep } = a.stateDict();
    const b = new AdamW({ weightDecay: 0.1 });
    expect(() => b.loadStateDict(noStep)).toThrow(/needs exp_avg, exp_avg_sq and step/);
    expect(b.stateBytes()).toBe(0);
  });
  test('stateDict copies unless asked not to', () => {
    const a = new AdamW();
    run(a, 0);
    expect(a.stateDict()['exp_avg:w']).not.toBe(a.stateDict()['exp_avg:w']);
    expect(a.stateDict({ copy: false })['exp_avg:w']).toBe(a.stateDict({ copy: false })['exp_avg:w']);
  });
});

describe('weight decay policy', () => {
  test('default: no decay on rank <= 1 tensors nor on norm/bias names', () => {
    expect(defaultDecayPolicy('model.layers.0.mlp.down_proj.weight', [64, 256])).toBe(true);
    expect(defaultDecayPolicy('model.layers.0.input_layernorm.weight', [64])).toBe(false);
    expect(defaultDecayPolicy('ln_f.weight', [64])).toBe(false);
    expect(defaultDecayPolicy('attn.c_attn.bias', [3, 64])).toBe(false);
    expect(defaultDecayPolicy('encoder.LayerNorm.weight', undefined)).toBe(false);
    expect(defaultDecayPolicy('lm_head.weight', undefined)).toBe(true);
  });
  test('step decays only the decayed group', () => {
    const shapes = { 'q.weight': [2, 2], 'ln.weight': [2], 'norm.scale': [1, 2], 'out.bias': [2] };
    for (const opt of [new AdamW({ weightDecay: 0.1 }, { shapes }), new SGD({ weightDecay: 0.1 }, { shapes })]) {
      const params = new Map(Object.entries(shapes).map(([n, s]) => [n, new Float32Array(s[0]! * (s[1] ?? 1)).fill(1)]));
      const grads = new Map([...params].map(([n, p]) => [n, new Float32Array(p.length)]));
      opt.step(params, grads, 0.1);
      expect(Object.fromEntries([...params].map(([n, p]) => [n, p[0]]))).toEqual({
        'q.weight': Math.fround(0.99), 'ln.weight': 1, 'norm.scale': 1, 'out.bias': 1,
      });
      expect(() => opt.step(params, new Map([['nope', new Float32Array(1)]]), 0.1)).toThrow(/no such parameter/);
    }
  });
  test('a custom predicate replaces the default', () => {
    const opt = new AdamW({ weightDecay: 0.1 }, { decay: (name) => name.startsWith('lora_') });
    expect(opt.decayPolicy('lora_A', [8, 64])).toBe(true);
    expect(opt.decayPolicy('q.weight', [64, 64])).toBe(false);
  });
});

test('micro benchmark (printed, not asserted)', () => {
  const n = 1 << 20, p = new Float32Array(n).fill(0.5), g = new Float32Array(n).map((_, i) => Math.sin(i));
  for (const opt of [new AdamW({ weightDecay: 0.1 }), new SGD({ momentum: 0.9, nesterov: true, weightDecay: 0.1 })]) {
    opt.update('w', p, g, 1e-3);
    const t0 = performance.now();
    for (let k = 0; k < 5; k++) opt.update('w', p, g, 1e-3);
    const ns = ((performance.now() - t0) * 1e6) / (5 * n);
    console.log(`${opt.constructor.name}: ${ns.toFixed(2)} ns/param (~${((ns * 135e6) / 1e9).toFixed(2)} s per step at 135M)`);
  }
});
