/**
 * AdaLoRA: the budget schedule, masking to the budget, validation, a bit-exact resume, the exported PEFT folder
 * reloading to the same logits, and parity with the independent reference on stories260k (loss and gradients of a
 * pruned PEFT adapter, and the orthogonality regulariser).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildCausalLM, compile, gradName, hostTensor, loadModel, nn, paramSpecs, parseConfig, PluginDriver, readAll, trace, valueAndGrad,
  type HostTensor, type ModelConfig, type Plugin, type PluginContext,
} from '../../core/index.ts';
import { planMemory } from '../../core/memory/plan.ts';
import { buildLossGraph } from '../../core/train/graphs.ts';
import { train } from '../../core/train/trainer.ts';
import { FIXTURES, fixtureBatch, maxRelError } from '../../tests/models/fixtures.ts';
import { bitDifferences, quiet, removeTempDirs, silentProgress, STORIES, tempDir, tinyConfig, writeTinyData } from '../../tests/train/helpers.ts';
import { budgetSchedule, RankAllocator, type AllocatedModule } from './allocator.ts';
import { adalora, type AdaloraApi } from './index.ts';
import { loraAName, loraBName, loraEName } from './layer.ts';
import { adaloraPeft } from './peft.ts';

afterAll(removeTempDirs);

const PEFT_DIR = join(FIXTURES, 'peft');
const ADAPTER = join(PEFT_DIR, 'adalora');
const storiesMissing = !existsSync(join(STORIES, 'config.json'));
const fixtureMissing = storiesMissing || !existsSync(join(ADAPTER, 'adapter_config.json'));
if (storiesMissing) console.warn(`skipping AdaLoRA training tests: the stories260k model is absent (${STORIES}); see README (../shared)`);
if (fixtureMissing) console.warn(`skipping AdaLoRA parity: ${ADAPTER} is absent`);

const contextFor = (config: ModelConfig, phase: PluginContext['phase'], totalSteps = 1): PluginContext => ({
  model: { config, specs: paramSpecs(config) }, run: { dir: '', seed: 1, totalSteps }, phase, log: () => {}, plugin: () => undefined,
});

/** A deterministic stream in [0, 1) for synthetic parameters and gradients. */
function stream(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('budget schedule (PEFT budget_schedule)', () => {
  // init 120 (10 modules × 12), target 80 (× 8); T 100, tinit 10, tfinal 20, deltaT 5: the budgeting phase is 70 steps.
  const s = { tinit: 10, tfinal: 20, deltaT: 5, totalStep: 100, initBudget: 120, targetBudget: 80 };
  test.each([
    [0, 120, false], // warm-up
    [10, 120, false], // step <= tinit
    [11, 118, false], // int(40·(69/70)³ + 80) = int(118.31); 11 % 5 ≠ 0
    [30, 94, true], // int(40·(5/7)³ + 80) = int(94.58)
    [45, 85, true], // 40·(1/2)³ + 80 = 85 exactly
    [80, 80, true], // T − tfinal: the coefficient is 0
    [81, 80, true], // final phase
  ])('step %d: budget %d, mask %p', (step, budget, mask) => {
    expect(budgetSchedule(s, step)).toEqual({ budget, mask });
  });
});

describe('rank allocator', () => {
  const modules: AllocatedModule[] = [
    { name: 'm.layers.0.q_proj', r: 4, inFeatures: 6, outFeatures: 5 },
    { name: 'm.layers.0.v_proj', r: 4, inFeatures: 6, outFeatures: 3 },
    { name: 'm.layers.1.q_proj', r: 4, inFeatures: 6, outFeatures: 5 },
  ];
  const randomTensors = (random: () => number, scale = 1) => {
    const m = new Map<string, HostTensor>();
    for (const x of modules) {
      m.set(loraAName(x.name), hostTensor('float32', [x.r, x.inFeatures], Array.from({ length: x.r * x.inFeatures }, () => scale * (random() - 0.5))));
      m.set(loraEName(x.name), hostTensor('float32', [x.r, 1], Array.from({ length: x.r }, () => scale * (random() + 0.5))));
      m.set(loraBName(x.name), hostTensor('float32', [x.outFeatures, x.r], Array.from({ length: x.outFeatures * x.r }, () => scale * (random() - 0.5))));
    }
    return m;
  };

  test('EMAs: I = β1 I + (1 − β1)|p·g|, U = β2 U + (1 − β2)|ipt − I| with the new I', () => {
    const one = [{ name: 'x', r: 1, inFeatures: 1, outFeatures: 1 }];
    const alloc = new RankAllocator(one, { tinit: 0, tfinal: 0, deltaT: 1, totalStep: 10, targetR: 1 }, { beta1: 0.85, beta2: 0.85 });
    const params = new Map([[loraAName('x'), hostTensor('float32', [1, 1], [2])], [loraEName('x'), hostTensor('float32', [1, 1], [1])], [loraBName('x'), hostTensor('float32', [1, 1], [1])]]);
    const grads = new Map([[loraAName('x'), Float32Array.of(0.5)], [loraEName('x'), Float32Array.of(0)], [loraBName('x'), Float32Array.of(0)]]);
    alloc.updateSensitivity(params, grads); // ipt 1: I = 0.15, U = 0.15 · 0.85
    expect(alloc.sensitivity(loraAName('x'))!.ipt[0]).toBe(Math.fround(0.15));
    expect(alloc.sensitivity(loraAName('x'))!.unc[0]).toBeCloseTo(0.15 * 0.85, 7);
    alloc.updateSensitivity(params, grads); // I = 0.85 · 0.15 + 0.15, U = 0.85 · 0.1275 + 0.15 · |1 − I|
    const I = 0.85 * 0.15 + 0.15;
    expect(alloc.sensitivity(loraAName('x'))!.ipt[0]).toBeCloseTo(I, 7);
    expect(alloc.sensitivity(loraAName('x'))!.unc[0]).toBeCloseTo(0.85 * 0.1275 + 0.15 * (1 - I), 7);
  });

  test('after each masking the kept singular values are the budget, the highest-scored ones', () => {
    const T = 10;
    const alloc = new RankAllocator(modules, { tinit: 1, tfinal: 2, deltaT: 2, totalStep: T, targetR: 1 }, { beta1: 0.85, beta2: 0.85 });
    expect(alloc.schedule.initBudget).toBe(12);
    expect(alloc.schedule.targetBudget).toBe(3);
    const random = stream(7);
    const params = randomTensors(random);
    let masks = 0;
    for (let step = 1; step <= T; step++) {
      // The optimizer's update: new values for everything (revives masked E entries, as in training).
      for (const [name, t] of randomTensors(random)) (params.get(name)!.data as Float32Array).set(t.data as Float32Array);
      const grads = new Map([...randomTensors(random)].map(([n, t]) => [n, t.data as Float32Array]));
      const scoresBefore = step === T - 2 ? alloc.tripletScores() : undefined; // the final allocation uses the EMAs as they are
      const event = alloc.step(step, params, grads);
      const { budget, mask } = budgetSchedule(alloc.schedule, step);
      expect(event.budget).toBe(budget);
      if (step <= 1) expect(event.phase).toBe('warmup');
      if (!(mask || step === T - 2) || step > T - 2) continue;
      masks++;
      const pattern = alloc.rankPattern!;
      const scores = scoresBefore ?? alloc.tripletScores();
      const flat = modules.flatMap((m) => [...scores.get(m.name)!].map((s, i) => ({ s, kept: pattern[m.name]![i]!, e: (params.get(loraEName(m.name))!.data as Float32Array)[i]! })));
      expect(new Set(flat.map((x) => x.s)).size).toBe(flat.length); // distinct scores: no ties
      expect(flat.filter((x) => x.kept).length).toBe(budget);
      expect(flat.filter((x) => x.e !== 0).length).toBe(budget); // E > 0 before masking, so nonzero = kept
      const cut = [...flat].sort((a, b) => b.s - a.s)[budget - 1]!.s;
      for (const x of flat) expect(x.kept).toBe(x.s >= cut);
      if (step === T - 2) {
        expect(event.phase).toBe('final');
        expect(budget).toBe(3);
        expect(alloc.state().ipt.every((v) => v === 0)).toBe(true); // reset after the final allocation
      }
    }
    expect(masks).toBe(1 + 3); // steps 2, 4, 6 (deltaT 2) and the final allocation at 8
    // Afterwards the final pattern is re-applied every step, on values the optimizer revived.
    const final = alloc.rankPattern!;
    for (const m of modules) {
      const e = params.get(loraEName(m.name))!.data as Float32Array;
      final[m.name]!.forEach((kept, i) => expect(kept || e[i] === 0).toBe(true));
    }
  });

  test('k = 0 (budget still the initial one) masks nothing', () => {
    const alloc = new RankAllocator(modules, { tinit: 0, tfinal: 0, deltaT: 1, totalStep: 10, targetR: 4 }, { beta1: 0.85, beta2: 0.85 });
    const params = randomTensors(stream(3));
    const pattern = alloc.maskToBudget(params, 12);
    expect(Object.values(pattern).flat().every(Boolean)).toBe(true);
  });
});

describe('options', () => {
  const config = parseConfig({ architectures: ['LlamaForCausalLM'], vocab_size: 16, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2 });
  const problems = (options: Parameters<typeof adalora>[0]) => adalora(options)['config:validate']!(contextFor(config, 'train')) as string[];

  test('config:validate names the option: targetR, tinit/tfinal/totalStep, targets, rankPattern', () => {
    expect(problems({})).toEqual([]);
    expect(problems({ initR: 4, targetR: 6 }).join()).toContain('targetR (6) must not exceed initR (4)');
    expect(problems({ tinit: 5, tfinal: 5, totalStep: 10 }).join()).toContain('tinit (5) must be less than totalStep − tfinal');
    expect(problems({ targets: ['nope'] }).join()).toContain('targets ["nope"] match no linear layer');
    expect(problems({ initR: 2, rankPattern: { 'model.layers.0.self_attn.q_proj.lora_E': [true] } }).join()).toContain("rankPattern: 'model.layers.0.self_attn.q_proj' has 1 entries");
    expect(() => adalora({ initR: 0 })).toThrow();
    expect(() => adalora({ unknown: 1 } as Parameters<typeof adalora>[0])).toThrow();
  });

  test('a schedule without a budgeting phase fails when training starts (T is the run length)', () => {
    const plugin = adalora({ tinit: 3 });
    const ctx = contextFor(config, 'train', 3);
    trace((g) => ({ y: plugin['model:linear']!(ctx, { name: 'model.layers.0.self_attn.q_proj', module: 'q_proj', layer: 0, inFeatures: 8, outFeatures: 8 }, g.input('x', 'float32', [2, 8]), g.input('w', 'float32', [8, 8]), undefined, (_s, x, w) => nn.linear(x, w)) }));
    expect(() => plugin['train:start']!(ctx)).toThrow("tinit (3) must be less than totalStep − tfinal (3 − 0) with the run's 3 steps");
  });

  test('PEFT configs: missing total_step and a rank_pattern that disagrees with the tensors name the field', () => {
    const raw: Record<string, unknown> = { peft_type: 'ADALORA', init_r: 2, target_r: 1 };
    const tensors = new Map([
      ['model.layers.0.self_attn.q_proj.lora_A', hostTensor('float32', [1, 8])],
      ['model.layers.0.self_attn.q_proj.lora_E', hostTensor('float32', [1, 1])],
      ['model.layers.0.self_attn.q_proj.lora_B', hostTensor('float32', [8, 1])],
    ]);
    expect(() => adaloraPeft.plugin(raw, tensors, 'x.json')).toThrow("field 'total_step'");
    expect(() => adaloraPeft.plugin({ ...raw, total_step: 10, rank_pattern: { 'model.layers.0.self_attn.q_proj.lora_E': [true, true] } }, tensors, 'x.json'))
      .toThrow("field 'rank_pattern.model.layers.0.self_attn.q_proj.lora_E': keeps 2 ranks but the file's tensors have rank 1");
    expect(() => adaloraPeft.plugin({ ...raw, total_step: 10 }, tensors, 'x.json')).toThrow("field 'rank_pattern'");
    const ok = adaloraPeft.plugin({ ...raw, total_step: 10, rank_pattern: { 'model.layers.0.self_attn.q_proj.lora_E': [false, true] } }, tensors, 'x.json');
    expect(ok.name).toBe('tuneforge:adalora');
  });
});

/** Logits [B, T, V] of the model with `plugin`'s adapter, its parameters taken from `params`. */
async function logitsWith(plugin: Plugin, params: ReadonlyMap<string, HostTensor>, config: ModelConfig, base: ReadonlyMap<string, HostTensor>, ids: HostTensor): Promise<Float32Array> {
  const driver = new PluginDriver([plugin]);
  const ctx = contextFor(config, 'eval');
  const graph = trace((g) => {
    const linear = driver.linear(ctx, (_s, x, w, b) => nn.linear(x, w, b));
    return { logits: buildCausalLM(g, config, { batch: ids.shape[0]!, seq: ids.shape[1]!, hooks: { linear } }).logits };
  });
  const exe = await compile(graph, { resident: base });
  const feeds: Record<string, HostTensor> = { input_ids: ids };
  for (const i of graph.inputs) if (i.name !== 'input_ids' && !base.has(i.name)) feeds[i.name] = params.get(i.name)!;
  const out = await exe.run(feeds);
  await exe.release();
  return out.logits!.data as Float32Array;
}

describe.skipIf(storiesMissing)('training on stories260k', () => {
  const makePlugin = () => adalora({ initR: 4, targetR: 2, alpha: 8, targets: ['q_proj', 'v_proj'], tinit: 1, totalStep: 12 });
  const stateOf = (p: Plugin) => {
    const s = (p.api as AdaloraApi).allocator()!.state();
    return { ema: new Map([['ipt', hostTensor('float32', [s.ipt.length], s.ipt)], ['unc', hostTensor('float32', [s.unc.length], s.unc)]]), pattern: s.rankPattern };
  };

  test('8 steps straight = 4 steps, checkpoint, resume, 4 steps: parameters and EMAs bit for bit; the export reloads', async () => {
    const dir = tempDir('adalora-resume');
    const data = writeTinyData(dir);
    const overrides = { train: { steps: 8 }, checkpoint: { every: 4, keep: 2 }, export: { adapters: true } };
    const run = (out: string, plugin: Plugin, stopAfterSteps?: number) =>
      train({ config: tinyConfig(data, join(dir, out), overrides), plugins: [plugin], progress: silentProgress, log: quiet, stopAfterSteps });

    const straightPlugin = makePlugin();
    const straight = await run('straight', straightPlugin);
    const halfPlugin = makePlugin();
    const half = await run('resumed', halfPlugin, 4);
    expect(half.step).toBe(4);
    const resumedPlugin = makePlugin();
    const resumed = await run('resumed', resumedPlugin);
    expect(resumed.finished).toBe(true);

    // Not vacuous: the parameters moved after step 4, E entries were masked, the EMAs are live (T = 12 > 8 steps).
    expect(bitDifferences(half.trained, straight.trained).length).toBe(straight.trained.size);
    const a = stateOf(straightPlugin), b = stateOf(resumedPlugin);
    expect(a.ema.get('ipt')!.data.some((v) => v !== 0)).toBe(true);
    expect(bitDifferences(stateOf(halfPlugin).ema, a.ema).length).toBe(2);
    const budget = budgetSchedule((straightPlugin.api as AdaloraApi).allocator()!.schedule, 8).budget; // int(20·(4/11)³ + 20) = 20
    expect(Object.values(a.pattern!).flat().filter(Boolean).length).toBe(budget);

    expect(bitDifferences(resumed.trained, straight.trained)).toEqual([]);
    expect(bitDifferences(b.ema, a.ema)).toEqual([]);
    expect(b.pattern).toEqual(a.pattern);

    // The exported adapter: PEFT's fields, pruned tensors, and the same logits through adaloraPeft.
    const adapterDir = join(dir, 'straight', 'export', 'adapter');
    expect(straight.exported).toContain(join(adapterDir, 'adapter_config.json'));
    const cfg = JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    if (existsSync(join(ADAPTER, 'adapter_config.json'))) {
      const reference = Object.keys(JSON.parse(readFileSync(join(ADAPTER, 'adapter_config.json'), 'utf8')) as object).sort();
      expect(Object.keys(cfg).sort()).toEqual(reference);
    }
    expect(cfg).toMatchObject({ peft_type: 'ADALORA', init_r: 4, target_r: 2, total_step: 12, tinit: 1, target_modules: ['q_proj', 'v_proj'] });
    const raw = await readAll(join(adapterDir, 'adapter_model.safetensors'));
    const tensors = new Map([...raw].map(([k, v]) => [k.replace(/^base_model\.model\./, ''), v]));
    expect(tensors.size).toBe(5 * 2 * 3);
    for (const [key, keep] of Object.entries(cfg.rank_pattern as Record<string, boolean[]>)) {
      expect(tensors.get(key)!.shape).toEqual([keep.filter(Boolean).length, 1]);
    }
    const { config, weights } = await loadModel(STORIES);
    const { input_ids } = await fixtureBatch();
    const ours = await logitsWith(straightPlugin, straight.trained, config, weights, input_ids);
    const reloaded = await logitsWith(adaloraPeft.plugin(cfg, tensors, adapterDir), tensors, config, weights, input_ids);
    expect(maxRelError(reloaded, ours)).toBeLessThan(1e-5);
    const none = adalora({ targets: ['nothing'] }); // the base model alone
    const base = await logitsWith(none, new Map(), config, weights, input_ids);
    expect(maxRelError(base, ours)).toBeGreaterThan(1e-5); // the adapter does change the logits
    // export:merge: W + scaling · B (A ⊙ E) gives the same model without the adapter.
    const merged = await logitsWith(none, new Map(), config, (straightPlugin.api as AdaloraApi).merge(weights, straight.trained), input_ids);
    expect(maxRelError(merged, ours)).toBeLessThan(1e-5);
  }, 60_000);
});

describe.skipIf(storiesMissing)('memory plan', () => {
  test('memory:plan adds the two EMAs (I, U) per adapter value; parameters, gradients and moments are the planner\'s', async () => {
    const dir = tempDir('adalora-plan');
    const plan = await planMemory(tinyConfig(writeTinyData(dir), join(dir, 'out')), [adalora({ initR: 4, targetR: 2 })]);
    // 5 layers × (q_proj 4·(64 + 1 + 64) + v_proj 4·(64 + 1 + 32)) adapter values, all trainable.
    expect(plan.trainableParameters).toBe(5 * (4 * 129 + 4 * 97));
    const item = plan.items.find((i) => i.component.startsWith('AdaLoRA sensitivity EMAs'));
    expect(item?.bytes).toBe(8 * plan.trainableParameters);
    expect(plan.items.filter((i) => i.component.includes('AdaLoRA')).length).toBe(1);
  });
});

describe.skipIf(fixtureMissing)('parity with the reference (stories260k, pruned PEFT adapter)', () => {
  test('cross-entropy loss and every gradient match peft_losses.json and adalora_grads.safetensors; the regulariser matches', async () => {
    const { config, weights } = await loadModel(STORIES);
    const batch = await fixtureBatch();
    const rawConfig = JSON.parse(readFileSync(join(ADAPTER, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    const file = await readAll(join(ADAPTER, 'adapter_model.safetensors'));
    const tensors = new Map([...file].map(([k, v]) => [k.replace(/^base_model\.model\./, ''), v]));
    const plugin = adaloraPeft.plugin(rawConfig, tensors, ADAPTER);
    const driver = new PluginDriver([plugin]);
    await driver.validate(contextFor(config, 'eval'));
    const [B, T] = batch.input_ids.shape as [number, number];
    const names = [...tensors.keys()];

    // Eval phase: the plain cross-entropy (the reference excludes the regulariser).
    const graph = buildLossGraph(driver, contextFor(config, 'eval'), config);
    // The plugin's graph inputs are exactly the file's tensors, pruned shapes included.
    const adapterInputs = new Map(graph.inputs.filter((i) => !weights.has(i.name) && i.name !== 'input_ids' && i.name !== 'labels').map((i) => [i.name, i.v.shape]));
    expect([...adapterInputs.keys()].sort()).toEqual([...names].sort());
    for (const n of names) expect(adapterInputs.get(n)).toEqual(tensors.get(n)!.shape);
    const exe = await compile(valueAndGrad(graph, { of: 'loss', wrt: names }), { dims: { B, T }, resident: weights });
    const feeds: Record<string, HostTensor> = { ...batch, ...Object.fromEntries(tensors) };
    const out = await exe.run(feeds);
    await exe.release();
    const losses = JSON.parse(readFileSync(join(PEFT_DIR, 'peft_losses.json'), 'utf8')) as Record<string, number>;
    expect(Math.abs(Number(out.loss!.data[0]) - losses.adalora!)).toBeLessThan(1e-4);
    const ref = await readAll(join(PEFT_DIR, 'adalora_grads.safetensors'));
    expect(ref.size).toBe(tensors.size);
    let worst = 0;
    for (const [key, r] of ref) {
      const ours = out[gradName(key.replace(/^base_model\.model\./, ''))]!;
      expect(ours.shape).toEqual(r.shape);
      worst = Math.max(worst, maxRelError(ours.data as Float32Array, r.data as Float32Array));
    }
    console.log(`AdaLoRA gradients: worst per-tensor relative error ${worst.toExponential(2)} over ${ref.size} tensors`);
    expect(worst).toBeLessThan(1e-3);

    // Train phase: + orth_reg_weight · mean(‖AAᵀ − I‖_F, ‖BᵀB − I‖_F), computed here in float64.
    const trainGraph = buildLossGraph(driver, contextFor(config, 'train'), config);
    const fwd = await compile(trainGraph, { dims: { B, T }, resident: weights });
    const withReg = Number((await fwd.run(feeds)).loss!.data[0]);
    await fwd.release();
    let sum = 0, count = 0;
    for (const [name, t] of tensors) {
      if (name.endsWith('.lora_E')) continue;
      const [rows, cols] = t.shape as [number, number];
      const x = t.data as Float32Array;
      const isA = name.endsWith('.lora_A');
      const r = isA ? rows : cols;
      let f = 0;
      for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) {
        let d = 0;
        if (isA) for (let k = 0; k < cols; k++) d += x[i * cols + k]! * x[j * cols + k]!;
        else for (let k = 0; k < rows; k++) d += x[k * cols + i]! * x[k * cols + j]!;
        f += (d - (i === j ? 1 : 0)) ** 2;
      }
      sum += Math.sqrt(f);
      count++;
    }
    expect(count).toBe(30);
    expect(Math.abs(withReg - (Number(out.loss!.data[0]) + 0.5 * (sum / count)))).toBeLessThan(1e-4);
  }, 60_000);
});
