/**
 * The zeroth-order family (MeZO, Malladi et al. 2023; ZO-Bench, Zhang et al. 2024): no backward pass. Each step
 * estimates the directional derivative g = (f(θ+εz) − f(θ−εz)) / 2ε along a random Gaussian direction z and moves
 * along z. z is regenerated from a seed whenever it is needed and never stored, and the parameters are perturbed in
 * place, so memory stays that of inference. Combines with any plugin that chooses the trainable set
 * (fullFinetune, lora, ...): those are the parameters perturbed.
 *
 * ```ts
 * plugins: [lora({ r: 8 }), zo({ variant: 'sgd', eps: 1e-2 })]
 * ```
 */
import { hostTensor, type EstimatorStep, type GradientEstimator, type HostTensor, type Plugin } from '../../core/index.ts';
import { zoSchema, type ZoConfig, type ZoOptions } from './config.ts';
import { applyUpdate, perturb, type Query, type ZoState } from './update.ts';

export const ZO = 'tuneforge:zo';

export interface ZoApi {
  readonly config: ZoConfig;
  /** Forward passes per step for this configuration (for budgets by forward passes). */
  forwardsPerStep(): number;
}

export function zoEstimator(cfg: ZoConfig, state: ZoState): GradientEstimator {
  const buffers = cfg.variant === 'mmt' ? 1 : cfg.variant === 'adam' ? 2 : 0;
  return {
    name: `zo-${cfg.variant}`,
    memory: {
      graphs: (forward) => [forward],
      gradients: false,
      // mmt/adam keep moments, and form the averaged estimate in one scratch tensor at a time.
      extraBytesPerTrainableParam: 4 * buffers,
      extraNote: buffers ? `${cfg.variant} moments` : undefined,
    },
    async estimate(s: EstimatorStep) {
      const exe = await s.compile(s.forward, 'zo-forward'); // forward only: no gradient graph, no kept activations
      const feeds: Record<string, HostTensor> = {};
      for (const i of exe.inputs) feeds[i.name] = s.feeds[i.name] ?? s.ctx.params.get(i.name)!;
      const f = async () => Number((await exe.run(feeds)).loss!.data[0]);
      const params = s.trainable.map((name) => ({ name, data: s.ctx.params.get(name)!.data as Float32Array }));
      const eps = cfg.eps;
      const base = cfg.estimate === 'one-sided' || cfg.variant === 'cons' ? await f() : undefined;
      const queries: Query[] = [];
      let lossSum = 0;
      for (let q = 0; q < cfg.queries; q++) {
        const seed = Math.floor(s.ctx.random() * 2 ** 32);
        perturb(params, seed, eps);
        const plus = await f();
        let g: number;
        if (cfg.estimate === 'one-sided') {
          perturb(params, seed, -eps);
          g = (plus - base!) / eps;
          lossSum += base!;
        } else {
          perturb(params, seed, -2 * eps);
          const minus = await f();
          perturb(params, seed, eps);
          g = (plus - minus) / (2 * eps);
          lossSum += (plus + minus) / 2;
        }
        queries.push({ seed, g });
      }
      if (cfg.variant === 'cons') {
        // Keep the best of θ, θ − lr·g·z and θ + lr·g·z (two more forward passes).
        applyUpdate(cfg, state, params, queries, s.lr);
        const down = await f();
        applyUpdate(cfg, state, params, queries, -2 * s.lr);
        const up = await f();
        const best = Math.min(base!, down, up);
        if (best === down) applyUpdate(cfg, state, params, queries, 2 * s.lr);
        else if (best === base) applyUpdate(cfg, state, params, queries, s.lr);
      } else {
        applyUpdate(cfg, state, params, queries, s.lr);
      }
      return { loss: lossSum / cfg.queries, applied: true };
    },
  };
}

export function zo(options: ZoOptions = {}): Plugin<ZoApi> {
  const cfg = zoSchema.parse(options);
  const state: ZoState = { step: 0 };
  const forwardsPerStep = () => (cfg.variant === 'cons' ? 5 : 0) + (cfg.variant !== 'cons' && cfg.estimate === 'one-sided' ? 1 + cfg.queries : 0) + (cfg.variant !== 'cons' && cfg.estimate === 'two-sided' ? 2 * cfg.queries : 0);
  return {
    name: ZO,
    options: cfg,
    api: { config: cfg, forwardsPerStep },
    conflicts: ['tuneforge:forward-grad'],
    'config:validate'() {
      return cfg.variant === 'cons' && cfg.queries !== 1 ? ['variant "cons" compares single directions: use queries: 1'] : [];
    },
    'step:estimator'() {
      return zoEstimator(cfg, state);
    },
    'state:save'() {
      const out: Record<string, unknown> = { step: state.step };
      for (const [n, b] of state.m ?? []) out[`m:${n}`] = hostTensor('float32', [b.length], b);
      for (const [n, b] of state.v ?? []) out[`v:${n}`] = hostTensor('float32', [b.length], b);
      return out;
    },
    'state:load'(_ctx, saved) {
      state.step = Number(saved.step ?? 0);
      for (const [k, v] of Object.entries(saved)) {
        if (k.startsWith('m:')) (state.m ??= new Map()).set(k.slice(2), new Float32Array((v as HostTensor).data as Float32Array));
        if (k.startsWith('v:')) (state.v ??= new Map()).set(k.slice(2), new Float32Array((v as HostTensor).data as Float32Array));
      }
    },
  };
}

export { zoSchema, type ZoOptions, type ZoConfig };
