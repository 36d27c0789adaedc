/**
 * LISA (Pan et al. 2024, "LISA: Layerwise Importance Sampling for Memory-Efficient Large Language Model
 * Fine-Tuning"): full-parameter training of the embeddings, the LM head and γ decoder layers at a time; every K steps
 * another γ layers are drawn and the rest frozen. Only the active layers have gradients and optimizer state, so the
 * memory is that of training γ + 2 layers, while over the run every layer is trained.
 *
 * ```ts
 * plugins: [lisa()]                                                     // γ = 2, K = 20, uniform (LMFlow's defaults)
 * plugins: [lisa({ activeLayers: 4, interval: 50, sampling: 'grad-norm', temperature: 0.5 })]
 * ```
 *
 * Beyond the reference code: the optimizer state of layers frozen again is released at each switch (the trainer's
 * retrace calls `optimizer.forget`; `optimizer_mb` in metrics.jsonl stays flat), layers can be drawn by importance
 * (`sampling: 'weight-norm' | 'grad-norm'`), every switch is logged, and the sampler's state is checkpointed so a
 * resumed run draws the same layers as an uninterrupted one.
 */
import type { HostTensor, PluginContext, Plugin, StepContext, StepResult } from '../../core/index.ts';
import { lisaSchema, type LisaConfig, type LisaOptions } from './config.ts';
import { layoutOf, type Layout } from './layout.ts';
import { SamplerStream, drawWithoutReplacement, importanceProbabilities, samplerSeed } from './sampling.ts';

export const LISA = 'tuneforge:lisa';

/** Per candidate layer, what the sampler knows. */
export interface LayerStatistics {
  layer: number;
  /** The sampling statistic (weight norm, or relative gradient norm of its latest active window); undefined until measured. */
  statistic?: number;
  /** Its probability in the latest draw (of being picked first). */
  probability: number;
  /** Windows in which it was active. */
  selected: number;
  /** Optimizer steps it was trained for. */
  activeSteps: number;
}

export interface LisaSwitch {
  /** The first step trained with `layers` (0 for the first window). */
  step: number;
  layers: number[];
}

export interface LisaApi {
  readonly config: LisaConfig;
  /** Decoder layers trained in the current window. */
  activeLayers(): number[];
  /** Tensors trained all the time (embeddings, head, final norm as configured). */
  alwaysTrainable(): string[];
  /** Per candidate layer: statistic, latest probability, how often and how long it was trained. */
  statistics(): LayerStatistics[];
  /** Every window so far: its first step and its layers. */
  switches(): LisaSwitch[];
}

/** Everything that decides future draws; saved in checkpoints. Arrays are indexed by layer. */
interface SamplerState {
  active: number[] | undefined;
  rng: SamplerStream;
  stats: (number | undefined)[];
  /** grad-norm: sum over the current window's steps of each active layer's relative gradient norm, and the step count. */
  gradSum: number[];
  gradSteps: number;
  probabilities: number[];
  selected: number[];
  activeSteps: number[];
  history: LisaSwitch[];
  /** A restored state not yet announced in the log. */
  restored: boolean;
  warnedNoGrads: boolean;
}

function freshState(ctx: PluginContext): SamplerState {
  const L = ctx.model.config.layers;
  return {
    active: undefined, rng: new SamplerStream(samplerSeed(ctx.run.seed)), stats: new Array(L).fill(undefined),
    gradSum: new Array(L).fill(0), gradSteps: 0, probabilities: [], selected: new Array(L).fill(0),
    activeSteps: new Array(L).fill(0), history: [], restored: false, warnedNoGrads: false,
  };
}

const sumOfSquares = (a: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return s;
};

const fmt = (v: number) => (v === 0 ? '0' : Math.abs(v) >= 0.01 && Math.abs(v) < 1000 ? v.toFixed(3) : v.toExponential(2));
const list = (layers: readonly number[]) => `[${layers.join(', ')}]`;

export function lisa(options: LisaOptions = {}): Plugin<LisaApi> {
  const config = lisaSchema.parse(options);
  let layout: Layout | undefined;
  let state: SamplerState | undefined;

  const need = (): { layout: Layout; state: SamplerState } => {
    if (!layout || !state) throw new Error(`${LISA}: used before the run was set up (config:validate did not run)`);
    return { layout, state };
  };

  const trainableNames = (l: Layout, active: readonly number[]) => [...l.always, ...active.flatMap((i) => l.layerTensors.get(i) ?? [])];

  /** grad-norm: this step's gradient norm of each active layer relative to that of the always-trainable tensors. */
  const accumulateGradients = (ctx: StepContext, grads: ReadonlyMap<string, Float32Array> | undefined) => {
    const { layout: l, state: s } = need();
    if (!grads) {
      if (!s.warnedNoGrads) ctx.log('grad-norm sampling: this step has no gradients (the estimator updated the parameters itself); layers are drawn from the statistics so far');
      s.warnedNoGrads = true;
      return;
    }
    // The reference is the always-trainable part when there is one (the same tensors every window, so windows at
    // different points of training compare), else the whole gradient. Both sides are scaled alike by clipping.
    const present = l.always.filter((n) => grads.has(n));
    const reference = (present.length ? present : [...grads.keys()]).reduce((t, n) => t + sumOfSquares(grads.get(n)!), 0);
    if (!(reference > 0)) return;
    for (const layer of s.active ?? []) {
      const sq = (l.layerTensors.get(layer) ?? []).reduce((t, n) => t + (grads.has(n) ? sumOfSquares(grads.get(n)!) : 0), 0);
      s.gradSum[layer]! += Math.sqrt(sq / reference);
    }
    s.gradSteps++;
  };

  /** Refreshes the statistics and returns the probabilities over the candidates. */
  const probabilities = (params: ReadonlyMap<string, HostTensor>): number[] => {
    const { layout: l, state: s } = need();
    if (config.sampling === 'weight-norm') {
      for (const layer of l.candidates) {
        const names = l.layerTensors.get(layer) ?? [];
        s.stats[layer] = Math.sqrt(names.reduce((t, n) => t + sumOfSquares(params.get(n)!.data as Float32Array), 0));
      }
    } else if (config.sampling === 'grad-norm' && s.gradSteps > 0) {
      for (const layer of s.active ?? []) s.stats[layer] = s.gradSum[layer]! / s.gradSteps;
    }
    s.gradSum.fill(0);
    s.gradSteps = 0;
    if (config.sampling === 'uniform') return l.candidates.map(() => 1 / l.candidates.length);
    return importanceProbabilities(l.candidates.map((layer) => s.stats[layer]), config);
  };

  const draw = (step: number, probs: number[]): number[] => {
    const { layout: l, state: s } = need();
    const picked = drawWithoutReplacement(probs, config.activeLayers, () => s.rng.next()).map((i) => l.candidates[i]!);
    s.probabilities = probs;
    for (const layer of picked) s.selected[layer]!++;
    s.history.push({ step, layers: picked });
    return picked;
  };

  const api: LisaApi = {
    config,
    activeLayers: () => [...(state?.active ?? [])],
    alwaysTrainable: () => [...(layout?.always ?? [])],
    statistics: () => {
      const { layout: l, state: s } = need();
      return l.candidates.map((layer, i) => ({
        layer, statistic: s.stats[layer], probability: s.probabilities[i] ?? 1 / l.candidates.length,
        selected: s.selected[layer]!, activeSteps: s.activeSteps[layer]!,
      }));
    },
    switches: () => (state?.history ?? []).map((h) => ({ step: h.step, layers: [...h.layers] })),
  };

  return {
    name: LISA,
    options: config,
    api,
    conflicts: ['tuneforge:full'], // full fine-tuning trains every layer: nothing left to sample

    'config:validate'(ctx) {
      const L = ctx.model.config.layers;
      const problems: string[] = [];
      const bad = (config.layers ?? []).filter((i) => i >= L);
      if (bad.length) problems.push(`layers ${list(bad)} do not exist: the model has decoder layers 0..${L - 1}`);
      if (config.layers && new Set(config.layers).size !== config.layers.length) problems.push(`layers ${list(config.layers)} lists a layer twice`);
      const candidates = config.layers?.length ?? L;
      if (config.activeLayers > candidates) {
        problems.push(`activeLayers ${config.activeLayers} is more than the ${candidates} candidate layers; use at most ${candidates}`);
      }
      // The first hook of every run (the planner's and the trainer's): start the sampler from the run's seed, so a
      // plugin object reused for another run does not carry the previous run's draws.
      layout = layoutOf(ctx, config);
      state = freshState(ctx);
      return problems;
    },

    'params:trainable'(ctx, current) {
      const { layout: l, state: s } = need();
      if (!s.active) {
        // The parameters are not visible here, so the first window is uniform whatever the sampling.
        s.active = draw(0, l.candidates.map(() => 1 / l.candidates.length));
        ctx.log(`step 0: layers ${list(s.active)} of ${l.candidates.length} active (${config.activeLayers} every ${config.interval} steps, ${config.sampling}; first window uniform); always trainable: ${l.alwaysNote}`);
      } else if (s.restored) {
        s.restored = false;
        ctx.log(`resumed: layers ${list(s.active)} active since step ${s.history.at(-1)?.step ?? 0}`);
      }
      return new Set([...current, ...trainableNames(l, s.active)]);
    },

    'step:after'(ctx, result: StepResult) {
      const { state: s } = need();
      for (const layer of s.active ?? []) s.activeSteps[layer]!++;
      if (config.sampling === 'grad-norm') accumulateGradients(ctx, result.grads);
      if (ctx.step % config.interval !== 0 || ctx.step >= ctx.run.totalSteps) return;
      const before = s.active ?? [];
      const probs = probabilities(ctx.params);
      const next = draw(ctx.step, probs);
      s.active = next;
      const detail = config.sampling === 'uniform' ? 'uniform'
        : `${config.sampling}: p = ${probs.map(fmt).join(' ')}; statistic = ${need().layout.candidates.map((layer) => (s.stats[layer] === undefined ? '?' : fmt(s.stats[layer]!))).join(' ')}`;
      const same = next.join() === before.join();
      ctx.log(`step ${ctx.step}: layers ${list(before)} -> ${list(next)}${same ? ' (unchanged)' : ''} (${detail})`);
      // Same layers: nothing to rebuild, and their optimizer state simply carries on.
      if (!same) ctx.requestRetrace(`LISA: layers ${list(next)}`);
    },

    'state:save'() {
      const { state: s } = need();
      return {
        version: 1,
        active: s.active ?? null,
        rng: { seed: s.rng.seed, position: s.rng.position },
        stats: s.stats.map((v) => v ?? null),
        gradSum: s.gradSum,
        gradSteps: s.gradSteps,
        probabilities: s.probabilities,
        selected: s.selected,
        activeSteps: s.activeSteps,
        history: s.history,
      };
    },

    'state:load'(ctx, saved) {
      const L = ctx.model.config.layers;
      const numbers = (key: string): number[] => {
        const v = saved[key];
        if (!Array.isArray(v) || v.length !== L) throw new Error(`${LISA}: checkpoint state '${key}' should list ${L} layers (was it saved for another model?)`);
        return v as number[];
      };
      if (saved.version !== 1) throw new Error(`${LISA}: checkpoint state version ${String(saved.version)} is not supported`);
      const s = freshState(ctx);
      s.active = Array.isArray(saved.active) ? (saved.active as number[]) : undefined;
      if (s.active && s.active.length !== config.activeLayers) {
        throw new Error(`${LISA}: the checkpoint has ${s.active.length} active layers but activeLayers is ${config.activeLayers}; resume with the same options`);
      }
      const rng = saved.rng as { seed: number; position: number };
      s.rng = new SamplerStream(rng.seed, rng.position);
      s.stats = numbers('stats').map((v) => (v === null ? undefined : v));
      s.gradSum = [...numbers('gradSum')];
      s.gradSteps = Number(saved.gradSteps);
      s.probabilities = [...(saved.probabilities as number[])];
      s.selected = [...numbers('selected')];
      s.activeSteps = [...numbers('activeSteps')];
      s.history = (saved.history as LisaSwitch[]).map((h) => ({ step: h.step, layers: [...h.layers] }));
      s.restored = true;
      layout ??= layoutOf(ctx, config);
      state = s;
    },

    'memory:plan'(ctx) {
      const l = layout ?? layoutOf(ctx, config);
      // The planner sizes gradients and optimizer state from the trainable set, which holds γ layers at any time;
      // the sampler itself keeps a few numbers per layer.
      return [{
        component: 'LISA sampler',
        bytes: 8 * 4 * ctx.model.config.layers,
        note: `${config.activeLayers} of ${l.candidates.length} layers trained at a time; optimizer state of layers frozen again is released at each switch${config.interval === 1 ? '; with a switch after every step the peak stays below this plan (each step builds its sessions as it reaches them, and the new layers\' state exists only from the update on)' : ''}`,
      }];
    },
  };
}

export { lisaSchema, type LisaConfig, type LisaOptions };
export { SamplerStream, drawWithoutReplacement, importanceProbabilities, samplerSeed } from './sampling.ts';
