/**
 * LISA: the sampler (probabilities, draws, frequencies with a fixed seed), the trainable set through the trainer
 * (switches every K steps, γ whole layers plus the always-trainable tensors), optimizer state bounded across
 * switches, and kill-and-resume to identical weights.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  hostTensor, paramSpecs, parseConfig, randomWeights, seededRandom,
  type HostTensor, type ModelConfig, type Plugin, type PluginContext, type StepContext, type StepResult,
} from '../../core/index.ts';
import { planMemory } from '../../core/memory/index.ts';
import type { TrainConfig } from '../../core/train/config.ts';
import { train } from '../../core/train/trainer.ts';
import { bitDifferences, quiet, readJsonl, removeTempDirs, silentProgress, storiesMissing, tempDir, tinyConfig, writeTinyData } from '../../tests/train/helpers.ts';
import { SamplerStream, drawWithoutReplacement, importanceProbabilities, lisa, type LisaOptions } from './index.ts';
import { layerChangeNorms, layerNormChart } from './norms.ts';

afterAll(removeTempDirs);

// ------------------------------------------------------------------------------------------------ the sampler

describe('importance probabilities and draws', () => {
  test('p ∝ statistic^(1/τ), mixed with uniform; unmeasured layers count as the best measured one', () => {
    const p = importanceProbabilities([1, 2, 4, 1], { temperature: 1, explore: 0 });
    expect(p.map((v) => v * 8)).toEqual([1, 2, 4, 1].map((v) => expect.closeTo(v, 12)) as unknown as number[]);
    const sharp = importanceProbabilities([1, 2, 4, 1], { temperature: 0.5, explore: 0 }); // squares: 1, 4, 16, 1
    expect(sharp[2]!).toBeCloseTo(16 / 22, 12);
    const flat = importanceProbabilities([1, 2, 4, 1], { temperature: 1e6, explore: 0 });
    for (const v of flat) expect(v).toBeCloseTo(0.25, 5);
    const mixed = importanceProbabilities([0, 0, 1, 0], { temperature: 1, explore: 0.2 });
    expect(mixed).toEqual([0.05, 0.05, expect.closeTo(0.85, 12), 0.05] as unknown as number[]);
    expect(importanceProbabilities([undefined, 3, 1], { temperature: 1, explore: 0 })).toEqual([3 / 7, 3 / 7, 1 / 7].map((v) => expect.closeTo(v, 12)) as unknown as number[]);
    expect(importanceProbabilities([undefined, undefined], { temperature: 1, explore: 0.1 })).toEqual([0.5, 0.5]);
  });

  test('draws are distinct, sorted, and follow successive sampling without replacement', () => {
    const p = [0.1, 0.2, 0.3, 0.4];
    const random = seededRandom(11);
    const counts = [0, 0, 0, 0];
    const N = 20_000;
    for (let k = 0; k < N; k++) {
      const d = drawWithoutReplacement(p, 2, random);
      expect(d.length).toBe(2);
      expect(d[0]!).toBeLessThan(d[1]!);
      for (const i of d) counts[i]!++;
    }
    // P(i drawn) = p_i + Σ_j≠i p_j p_i / (1 - p_j): within 4 standard errors.
    p.forEach((pi, i) => {
      const inclusion = pi + p.reduce((s, pj, j) => (j === i ? s : s + (pj * pi) / (1 - pj)), 0);
      expect(Math.abs(counts[i]! / N - inclusion)).toBeLessThan(4 * Math.sqrt((inclusion * (1 - inclusion)) / N));
    });
    expect(() => drawWithoutReplacement(p, 5, random)).toThrow(/cannot draw 5 distinct layers from 4/);
  });

  test('the random stream restarts at a saved position', () => {
    const a = new SamplerStream(42);
    for (let i = 0; i < 7; i++) a.next();
    const b = new SamplerStream(a.seed, a.position);
    expect(b.position).toBe(7);
    expect([b.next(), b.next()]).toEqual([a.next(), a.next()]);
    expect(new SamplerStream(42).next()).not.toBe(b.next());
  });
});

// ------------------------------------------------------------------------------ the hooks, without training

/** An untied 6-layer model: small enough to build weights for in microseconds. */
const SMALL: ModelConfig = parseConfig({
  architectures: ['LlamaForCausalLM'], vocab_size: 32, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 6,
  num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: false,
});

function pluginContext(config: ModelConfig, seed = 5, log: string[] = []): PluginContext {
  return {
    model: { config, specs: paramSpecs(config) }, run: { dir: '/nonexistent', seed, totalSteps: 1e9 }, phase: 'train',
    log: (m) => log.push(m), plugin: () => undefined,
  };
}

/** Sets up a plugin as the trainer would (validate, then the trainable set) and returns a driver of switches. */
function harness(options: LisaOptions, params: Map<string, HostTensor>, config = SMALL) {
  const plugin = lisa(options);
  const log: string[] = [];
  const ctx = pluginContext(config, 5, log);
  expect(plugin['config:validate']!(ctx) ?? []).toEqual([]);
  let trainable = plugin['params:trainable']!(ctx, new Set());
  let retraces = 0;
  /** One optimizer step (`step` = steps done); `grads` by layer norm and the always-trainable norm. */
  const stepAfter = (step: number, result: Partial<StepResult> = {}) => {
    const stepCtx: StepContext = {
      ...ctx, step, trainable, dims: {}, params, random: seededRandom(step), stepSeed: step,
      requestRetrace: () => {
        retraces++;
        trainable = plugin['params:trainable']!(ctx, new Set());
      },
    };
    plugin['step:after']!(stepCtx, { loss: 1, lr: 1e-3, tokens: 1, ...result });
  };
  return { plugin, api: plugin.api!, log, ctx, stepAfter, trainable: () => trainable, retraces: () => retraces };
}

const layerNames = (config: ModelConfig, layer: number) => paramSpecs(config).filter((s) => s.name.startsWith(`model.layers.${layer}.`)).map((s) => s.name);

describe('the trainable set from the hooks', () => {
  test('γ whole layers plus embeddings, head and final norm; options drop the always-trainable ones', () => {
    const weights = randomWeights(SMALL, 1);
    const { trainable } = harness({ activeLayers: 3 }, weights);
    const set = trainable();
    const always = ['model.embed_tokens.weight', 'lm_head.weight', 'model.norm.weight'];
    for (const n of always) expect(set.has(n)).toBe(true);
    const layers = [...new Set([...set].flatMap((n) => /^model\.layers\.(\d+)\./.exec(n)?.[1] ?? []))].map(Number);
    expect(layers.length).toBe(3);
    expect(set.size).toBe(always.length + 3 * layerNames(SMALL, 0).length);
    for (const l of layers) for (const n of layerNames(SMALL, l)) expect(set.has(n)).toBe(true);

    const bare = harness({ trainEmbeddings: false, trainHead: false, trainFinalNorm: false }, weights).trainable();
    expect([...bare].every((n) => n.startsWith('model.layers.'))).toBe(true);
    expect(bare.size).toBe(2 * layerNames(SMALL, 0).length);
    // Tied embeddings: the head is the embedding matrix, so trainHead alone keeps it trainable.
    const tied = parseConfig({ ...SMALL.raw, tie_word_embeddings: true });
    const headOnly = harness({ trainEmbeddings: false, trainFinalNorm: false }, randomWeights(tied, 1), tied).trainable();
    expect(headOnly.has('model.embed_tokens.weight')).toBe(true);
  });

  test('config problems are reported together', () => {
    const ctx = pluginContext(SMALL);
    expect(lisa({ activeLayers: 7 })['config:validate']!(ctx)).toEqual(['activeLayers 7 is more than the 6 candidate layers; use at most 6']);
    expect(lisa({ layers: [1, 9, 1], activeLayers: 4 })['config:validate']!(ctx)).toEqual([
      'layers [9] do not exist: the model has decoder layers 0..5',
      'layers [1, 9, 1] lists a layer twice',
      'activeLayers 4 is more than the 3 candidate layers; use at most 3',
    ]);
    expect(() => lisa({ sampling: 'gradient' as 'grad-norm' })).toThrow();
  });

  test('only candidate layers are drawn; switching happens on multiples of K only', () => {
    const { stepAfter, api, retraces } = harness({ layers: [1, 4], activeLayers: 1, interval: 3 }, randomWeights(SMALL, 1));
    for (let step = 1; step <= 60; step++) stepAfter(step);
    expect(api.switches().map((s) => s.step)).toEqual([0, ...Array.from({ length: 20 }, (_, i) => 3 * (i + 1))]);
    expect(new Set(api.switches().flatMap((s) => s.layers))).toEqual(new Set([1, 4]));
    expect(retraces()).toBeGreaterThan(0);
    expect(retraces()).toBeLessThanOrEqual(20); // none when the same layer is drawn again
  });
});

describe('importance sampling prefers layers with a larger statistic (fixed seed, many draws)', () => {
  /** Frequency of each layer over `switches` draws. */
  function frequencies(h: ReturnType<typeof harness>, switches: number, interval: number, result?: (step: number) => Partial<StepResult>) {
    for (let step = 1; step <= switches * interval; step++) h.stepAfter(step, result?.(step));
    const draws = h.api.switches().slice(1); // the first window is uniform by design
    const counts = new Array<number>(SMALL.layers).fill(0);
    for (const d of draws) for (const l of d.layers) counts[l]!++;
    return counts.map((c) => c / draws.length);
  }

  test('weight-norm: a layer scaled ×2 (and one ×0.5) is drawn more (less) often, as the probabilities say', () => {
    const weights = randomWeights(SMALL, 2);
    const scale = (layer: number, by: number) => {
      for (const n of layerNames(SMALL, layer)) {
        const t = weights.get(n)!;
        weights.set(n, hostTensor('float32', t.shape, (t.data as Float32Array).map((v) => v * by)));
      }
    };
    scale(3, 2);
    scale(0, 0.5);
    const h = harness({ sampling: 'weight-norm', activeLayers: 2, interval: 1, explore: 0.1 }, weights);
    const freq = frequencies(h, 3000, 1);
    const stats = h.api.statistics();
    expect(stats[3]!.statistic! / stats[1]!.statistic!).toBeGreaterThan(1.5);
    expect(freq[3]!).toBeGreaterThan(Math.max(...freq.filter((_, i) => i !== 3)) + 0.1);
    expect(freq[0]!).toBeLessThan(Math.min(...freq.filter((_, i) => i !== 0)) - 0.05);
    // Frequencies agree with the inclusion probabilities of the reported p (within 4 standard errors).
    const p = stats.map((s) => s.probability);
    p.forEach((pi, i) => {
      const inclusion = pi + p.reduce((s, pj, j) => (j === i ? s : s + (pj * pi) / (1 - pj)), 0);
      expect(Math.abs(freq[i]! - inclusion)).toBeLessThan(4 * Math.sqrt((inclusion * (1 - inclusion)) / 3000));
    });
    // Uniform sampling with the same weights and seed shows no such preference.
    const u = frequencies(harness({ sampling: 'uniform', interval: 1 }, weights), 3000, 1);
    for (const f of u) expect(Math.abs(f - 2 / 6)).toBeLessThan(0.04);
  });

  test('grad-norm: statistics are each layer\'s gradient norm relative to the always-trainable part; larger ones win', () => {
    const weights = randomWeights(SMALL, 3);
    const layerGrad = [1, 1, 4, 1, 0.5, 1]; // target ‖g_layer‖ / ‖g_always‖
    const grads = (active: readonly number[]) => {
      const g = new Map<string, Float32Array>();
      // Always-trainable gradient of norm 2 in total (embeddings only), each active layer's scaled to 2·ratio.
      const emb = new Float32Array(SMALL.vocabSize * SMALL.hidden);
      emb[0] = 2;
      g.set('model.embed_tokens.weight', emb);
      for (const l of active) {
        const [first, ...rest] = layerNames(SMALL, l);
        const t = new Float32Array(weights.get(first!)!.data.length);
        t[0] = 2 * layerGrad[l]!;
        g.set(first!, t);
        for (const n of rest) g.set(n, new Float32Array(weights.get(n)!.data.length));
      }
      return g;
    };
    const h = harness({ sampling: 'grad-norm', activeLayers: 2, interval: 2, temperature: 1, explore: 0.05 }, weights);
    const freq = frequencies(h, 1500, 2, () => ({ grads: grads(h.api.activeLayers()) }));
    const stats = h.api.statistics();
    stats.forEach((s, l) => expect(s.statistic!).toBeCloseTo(layerGrad[l]!, 6));
    expect(freq[2]!).toBeGreaterThan(Math.max(...freq.filter((_, i) => i !== 2)) + 0.3);
    expect(freq[4]!).toBeLessThan(Math.min(...freq.filter((_, i) => i !== 4)));
    expect(h.log.some((l) => /grad-norm: p = .*statistic = /.test(l))).toBe(true);
  });
});

// -------------------------------------------------------------------------------- through the trainer

const missing = storiesMissing('LISA trainer tests');

/** stories260k: tied embeddings (the head), 5 decoder layers of 9 tensors, final norm. */
const STORIES_LAYER_PARAMS = 2 * 64 + 4096 + 2048 + 2048 + 4096 + 3 * 64 * 172;
const STORIES_ALWAYS_PARAMS = 512 * 64 + 64;

/** Records the trainable set at every step and the API, for assertions. */
function probe(): Plugin & { sets: Map<number, Set<string>> } {
  const sets = new Map<number, Set<string>>();
  return { name: 'test:probe', sets, 'step:before': (ctx) => { sets.set(ctx.step, new Set(ctx.trainable)); } };
}

async function run(config: TrainConfig, plugins: Plugin[], extra: { stopAfterSteps?: number } = {}) {
  const lines: string[] = [];
  const result = await train({ config, plugins, progress: silentProgress, log: (l) => { lines.push(l); quiet(l); }, ...extra });
  return { result, lines };
}

const layersOf = (set: ReadonlySet<string>) => [...new Set([...set].flatMap((n) => /^model\.layers\.(\d+)\./.exec(n)?.[1] ?? []))].map(Number).sort();

describe.skipIf(missing)('LISA in the trainer (stories260k)', () => {
  test.each([
    { activeLayers: 2, interval: 3, steps: 13 },
    { activeLayers: 3, interval: 4, steps: 12 },
  ])('γ = $activeLayers, K = $interval: the set switches every K steps and always holds embeddings and final norm', async (opts) => {
    const dir = tempDir('lisa-switch');
    const data = writeTinyData(dir);
    const p = probe();
    const plugin = lisa({ activeLayers: opts.activeLayers, interval: opts.interval });
    const { result, lines } = await run(tinyConfig(data, join(dir, 'out'), { train: { steps: opts.steps } }), [plugin, p]);
    expect(result.finished).toBe(true);
    const switchSteps = Array.from({ length: Math.ceil(opts.steps / opts.interval) - 1 }, (_, i) => (i + 1) * opts.interval);
    const api = plugin.api!;
    expect(api.switches().map((s) => s.step)).toEqual([0, ...switchSteps]);
    for (let step = 0; step < opts.steps; step++) {
      const set = p.sets.get(step)!;
      expect(set.has('model.embed_tokens.weight')).toBe(true); // also the (tied) head
      expect(set.has('model.norm.weight')).toBe(true);
      const layers = layersOf(set);
      expect(layers.length).toBe(opts.activeLayers);
      expect(set.size).toBe(2 + 9 * opts.activeLayers); // whole layers only
      const window = Math.floor(step / opts.interval);
      expect(layers).toEqual(api.switches()[window]!.layers); // constant inside a window, the drawn layers
      if (step > 0 && step % opts.interval !== 0) expect(set).toEqual(p.sets.get(step - 1)!);
    }
    // Each switch is in the log with its step; the trainer retraced exactly where the layers changed.
    for (const s of switchSteps) expect(lines.some((l) => l.startsWith(`[tuneforge:lisa] step ${s}: layers `))).toBe(true);
    const changed = api.switches().slice(1).filter((s, i) => s.layers.join() !== api.switches()[i]!.layers.join()).map((s) => s.step);
    expect(changed.length).toBeGreaterThan(0);
    expect(lines.filter((l) => /trainable set changed \(LISA/.test(l)).map((l) => Number(/^step (\d+)/.exec(l)![1]))).toEqual(changed);
  }, 30_000);

  test('optimizer state stays at the bound of γ layers + always-trainable tensors across many switches', async () => {
    const dir = tempDir('lisa-memory');
    const data = writeTinyData(dir);
    const plugin = lisa({ activeLayers: 2, interval: 2 });
    const config = tinyConfig(data, join(dir, 'out'), { train: { steps: 20 } });
    const { result } = await run(config, [plugin]);
    const bound = 8 * (STORIES_ALWAYS_PARAMS + 2 * STORIES_LAYER_PARAMS); // AdamW: two float32 moments each
    const records = readJsonl(join(config.output, 'metrics.jsonl')).filter((r) => r.optimizer_mb !== undefined);
    expect(records.length).toBe(20);
    const bytes = records.map((r) => Math.round(r.optimizer_mb! * 2 ** 20));
    expect(Math.max(...bytes)).toBe(bound);
    // Between switches the state is exactly the bound; right after a switch it is lower (new layers start fresh).
    for (const r of records) {
      const b = Math.round(r.optimizer_mb! * 2 ** 20);
      if (r.step! % 2 !== 0) expect(b).toBe(bound);
      else expect(b).toBeLessThanOrEqual(bound);
    }
    // Not vacuous: every layer was trained at some point, so keeping frozen layers' moments would exceed the bound.
    expect(new Set(plugin.api!.switches().flatMap((s) => s.layers)).size).toBe(5);
    expect(result.trained.size).toBe(2 + 5 * 9);
    // The planner predicts the same optimizer state (its trainable set is one window's).
    const plan = await planMemory(config, [lisa({ activeLayers: 2, interval: 2 })]);
    expect(plan.items.find((i) => i.component.startsWith('optimizer state'))!.bytes).toBe(bound);
    expect(plan.items.some((i) => i.component.startsWith('LISA sampler'))).toBe(true);
  }, 30_000);

  test('kill and resume mid-window (grad-norm sampling) gives the weights and layers of an uninterrupted run', async () => {
    const dir = tempDir('lisa-resume');
    const data = writeTinyData(dir);
    const make = () => lisa({ interval: 3, sampling: 'grad-norm', temperature: 0.5 });
    // Switches at 3, 6, 9; checkpoints at 4 and 8; the first process stops after 7, so it resumes from step 4,
    // after a switch and in the middle of a window (partial gradient statistics in the sampler state).
    const overrides = { train: { steps: 12, maxGradNorm: 0.5 }, checkpoint: { every: 4, keep: 2 } };
    const straightPlugin = make();
    const straight = await run(tinyConfig(data, join(dir, 'straight'), overrides), [straightPlugin]);
    const cfg = tinyConfig(data, join(dir, 'interrupted'), overrides);
    const first = await run(cfg, [make()], { stopAfterSteps: 7 });
    expect(first.result.step).toBe(7);
    expect(readFileSync(join(cfg.output, 'checkpoints', 'latest'), 'utf8').trim()).toBe('step-000004');
    const resumedPlugin = make();
    const second = await run(cfg, [resumedPlugin]);
    expect(second.lines.some((l) => /resumed from .*step-000004 at step 4/.test(l))).toBe(true);
    expect(second.lines.some((l) => /\[tuneforge:lisa\] resumed: layers \[\d+, \d+\] active since step 3/.test(l))).toBe(true);
    expect(second.result.step).toBe(12);
    expect(resumedPlugin.api!.switches()).toEqual(straightPlugin.api!.switches());
    expect(resumedPlugin.api!.statistics()).toEqual(straightPlugin.api!.statistics());
    // Weights moved between step 7 and 12 (so the comparison below means something), and match bit for bit.
    expect(bitDifferences(first.result.trained, straight.result.trained).length).toBeGreaterThan(0);
    expect(second.result.trained.size).toBe(straight.result.trained.size);
    expect(bitDifferences(second.result.trained, straight.result.trained)).toEqual([]);
  }, 30_000);
});

// ---------------------------------------------------------------------------------- the per-layer chart

describe('weight change per layer', () => {
  test('norms by group, and a chart with one series per technique', () => {
    const base = randomWeights(SMALL, 4);
    const tuned = new Map(base);
    const moved = (name: string, delta: number) => {
      const t = base.get(name)!;
      const d = (t.data as Float32Array).slice();
      d[0]! += delta;
      tuned.set(name, hostTensor('float32', t.shape, d));
    };
    moved('model.layers.2.mlp.up_proj.weight', 3);
    moved('model.layers.2.self_attn.q_proj.weight', 4);
    moved('lm_head.weight', 1);
    const { groups, values } = layerChangeNorms(SMALL, base, tuned);
    expect(groups).toEqual(['emb', '0', '1', '2', '3', '4', '5', 'norm', 'head']);
    expect(values).toEqual([0, 0, 0, 5, 0, 0, 0, 0, 1].map((v) => expect.closeTo(v, 5)) as unknown as number[]);
    const rel = layerChangeNorms(SMALL, base, tuned, { relative: true }).values;
    expect(rel[3]! * 1).toBeGreaterThan(0);
    expect(rel[3]!).toBeLessThan(values[3]!);
    const svg = layerNormChart({ groups, series: [{ name: 'full', values }, { name: 'LISA', values: rel }] });
    expect(svg.startsWith('<svg')).toBe(true);
    for (const s of ['full', 'LISA', 'head', 'emb']) expect(svg).toContain(s);
    const line = layerNormChart({ groups, series: [{ name: 'LoRA', values }], style: 'line' });
    expect(line).toContain('<path');
  });
});
