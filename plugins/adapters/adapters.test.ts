/**
 * Bottleneck adapters: parity with the independent reference on stories260k (loss and every gradient), the parallel
 * layer against a hand computation, identity at `mam` init, clamping, the refused merge, and export → reload.
 */
import { describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildCausalLM, compile, gradName, hostTensor, loadModel, nn, op, paramSpecs, parseConfig, PluginDriver, randomWeights, readAll, trace, valueAndGrad,
  type HostTensor, type ModelConfig, type Plugin, type PluginContext,
} from '../../core/index.ts';
import { buildLossGraph } from '../../core/train/graphs.ts';
import { FIXTURES, STORIES, fixtureBatch, maxRelError } from '../../tests/models/fixtures.ts';
import { PEFT_PREFIX } from './export.ts';
import { adapters, MERGE_REFUSAL, type AdaptersApi } from './index.ts';
import { bottleneckPeft } from './peft.ts';

const BOTTLENECK = join(FIXTURES, 'peft/bottleneck');
const missing = !existsSync(BOTTLENECK) || !existsSync(STORIES);
if (missing) console.warn(`skipping bottleneck adapter parity: ${BOTTLENECK} or ${STORIES} is absent`);

const TINY = parseConfig({
  architectures: ['LlamaForCausalLM'], vocab_size: 32, hidden_size: 16, intermediate_size: 24,
  num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
});

function contextFor(config: ModelConfig, driver: PluginDriver, phase: PluginContext['phase'] = 'train', logs: string[] = []): PluginContext {
  return { model: { config, specs: paramSpecs(config) }, run: { dir: '', seed: 3, totalSteps: 1 }, phase, log: (m) => logs.push(m), plugin: (n) => driver.api(n) };
}

const unprefixed = (file: ReadonlyMap<string, HostTensor>) =>
  new Map([...file].map(([k, v]) => [k.startsWith(PEFT_PREFIX) ? k.slice(PEFT_PREFIX.length) : k, v] as const));

/** Logits [B, T, V] of the model with the plugins, as a compiled function of the non-base inputs. */
async function logitsOf(config: ModelConfig, plugins: Plugin[], weights: ReadonlyMap<string, HostTensor>, ids: HostTensor) {
  const driver = new PluginDriver(plugins);
  const ctx = contextFor(config, driver, 'eval');
  const graph = trace((g) => {
    const m = buildCausalLM(g, config, { batch: ids.shape[0]!, seq: ids.shape[1]!, hooks: { linear: driver.linear(ctx, (_s, x, w, b) => nn.linear(x, w, b)) } });
    return { logits: m.logits };
  });
  const exe = await compile(graph, { resident: weights });
  const inputs = graph.inputs.map((i) => ({ name: i.name, shape: i.v.shape as number[] })).filter((i) => i.name !== 'input_ids' && !weights.has(i.name));
  return {
    inputs,
    async run(values: ReadonlyMap<string, HostTensor>): Promise<Float32Array> {
      const feeds: Record<string, HostTensor> = { input_ids: ids };
      for (const i of inputs) feeds[i.name] = values.get(i.name)!;
      const data = (await exe.run(feeds)).logits!.data as Float32Array;
      await exe.release();
      return data;
    },
  };
}

/** Initial values from the plugin's own `params:init`, as the trainer asks for them. */
async function initialValues(plugin: Plugin, config: ModelConfig, pending: { name: string; shape: number[] }[]): Promise<Map<string, HostTensor>> {
  const driver = new PluginDriver([plugin]);
  const got = await driver.collect('params:init', contextFor(config, driver), pending);
  return new Map(got.flatMap((r) => [...r.value]));
}

const tinyIds = hostTensor('int64', [2, 5], [1, 5, 9, 3, 7, 2, 30, 4, 4, 11]);

describe.skipIf(missing)('parity with the reference (stories260k, LLM-Adapters semantics)', () => {
  test('series adapters: loss and every gradient match bottleneck_grads.safetensors', async () => {
    const raw = JSON.parse(await Bun.file(join(BOTTLENECK, 'adapter_config.json')).text()) as Record<string, unknown>;
    const tensors = unprefixed(await readAll(join(BOTTLENECK, 'adapter_model.safetensors')));
    const plugin = bottleneckPeft.plugin(raw, tensors, join(BOTTLENECK, 'adapter_config.json'));
    const { config, weights } = await loadModel(STORIES);
    const driver = new PluginDriver([plugin]);
    const ctx = contextFor(config, driver);
    await driver.validate(ctx);
    const graph = buildLossGraph(driver, ctx, config);

    // The graph takes exactly the file's tensors, with the file's shapes.
    const own = graph.inputs.filter((i) => !weights.has(i.name) && i.name !== 'input_ids' && i.name !== 'labels');
    expect(own.map((i) => i.name).sort()).toEqual([...tensors.keys()].sort());
    for (const i of own) expect(i.v.shape).toEqual(tensors.get(i.name)!.shape);
    // The defaults (series, gate/up/down_proj) build the same inputs.
    const defaults = buildLossGraph(new PluginDriver([adapters({ bottleneckSize: 12 })]), ctx, config);
    expect(defaults.inputs.filter((i) => tensors.has(i.name)).length).toBe(tensors.size);

    const trainable = [...driver.waterfallSync('params:trainable', ctx, new Set<string>())];
    expect(trainable.sort()).toEqual([...tensors.keys()].sort());
    const batch = await fixtureBatch();
    const exe = await compile(valueAndGrad(graph, { of: 'loss', wrt: trainable }), { resident: weights, dims: { B: batch.input_ids.shape[0]!, T: batch.input_ids.shape[1]! } });
    const feeds: Record<string, HostTensor> = { ...batch };
    for (const n of trainable) feeds[n] = tensors.get(n)!;
    const out = await exe.run(feeds);
    await exe.release();

    const losses = JSON.parse(await Bun.file(join(FIXTURES, 'peft/peft_losses.json')).text()) as { bottleneck: number };
    expect(Math.abs(Number(out.loss!.data[0]) - losses.bottleneck)).toBeLessThan(1e-4);
    const ref = await readAll(join(FIXTURES, 'peft/bottleneck_grads.safetensors'));
    expect(ref.size).toBe(30);
    let worst = 0;
    for (const [key, r] of ref) {
      const ours = out[gradName(key.slice(PEFT_PREFIX.length))];
      expect(ours).toBeDefined();
      worst = Math.max(worst, maxRelError(ours!.data as Float32Array, r.data as Float32Array));
    }
    console.log(`bottleneck gradients: worst per-tensor relative error ${worst.toExponential(2)} over ${ref.size} tensors`);
    expect(worst).toBeLessThan(1e-3);
  });

  test('export writes the fork\'s config (as the fixture has it) and the same tensors', async () => {
    const { config } = await loadModel(STORIES);
    const plugin = adapters({ bottleneckSize: 12 });
    const driver = new PluginDriver([plugin]);
    const ctx = contextFor(config, driver);
    buildLossGraph(driver, ctx, config);
    const tensors = unprefixed(await readAll(join(BOTTLENECK, 'adapter_model.safetensors')));
    const dir = mkdtempSync(join(tmpdir(), 'adapters-'));
    const written = await plugin['export:artifacts']!(ctx, dir, tensors);
    expect(written).toEqual([join(dir, 'adapter/adapter_config.json'), join(dir, 'adapter/adapter_model.safetensors')]);
    const text = await Bun.file(join(dir, 'adapter/adapter_config.json')).text();
    const fixture = JSON.parse(await Bun.file(join(BOTTLENECK, 'adapter_config.json')).text()) as Record<string, unknown>;
    expect({ ...JSON.parse(text), base_model_name_or_path: fixture.base_model_name_or_path }).toEqual(fixture);
    expect(text).toContain('"scaling": 1.0,'); // a float for the fork's isinstance(scaling, float)
    const back = await readAll(join(dir, 'adapter/adapter_model.safetensors'));
    expect([...back.keys()].sort()).toEqual([...(await readAll(join(BOTTLENECK, 'adapter_model.safetensors'))).keys()].sort());
  });
});

describe('bottleneck adapters on a tiny model', () => {
  test('parallel layer: output and gradients equal a hand computation (learned scaling)', async () => {
    const [N, IN, OUT, BS] = [3, 4, 5, 2];
    const plugin = adapters({ kind: 'parallel', bottleneckSize: BS, scaling: 'learned', targets: ['q_proj'] });
    const driver = new PluginDriver([plugin]);
    const ctx = contextFor(TINY, driver);
    const site = { name: 'model.layers.0.self_attn.q_proj', module: 'q_proj', layer: 0, inFeatures: IN, outFeatures: OUT };
    const m = 'model.layers.0.self_attn.q_proj';
    const graph = trace((g) => {
      const x = g.input('x', 'float32', [N, IN]);
      const w = g.input('w', 'float32', [OUT, IN]);
      const r = g.input('r', 'float32', [N, OUT]);
      const y = driver.linear(ctx, (_s, u, wt, b) => nn.linear(u, wt, b))(site, x, w, undefined);
      return { y, loss: op.sum(op.mul(y, r)) };
    });
    const wrt = [`${m}.adapter_down.weight`, `${m}.adapter_up.weight`, `${m}.adapter_scaling`];
    const exe = await compile(valueAndGrad(graph, { of: 'loss', wrt }));
    const val = (n: number, k: number) => Array.from({ length: n }, (_, i) => Math.sin(1.3 * i + k));
    const x = val(N * IN, 1), w = val(OUT * IN, 2), r = val(N * OUT, 3), down = val(BS * IN, 4), up = val(OUT * BS, 5), s = 0.7;
    const out = await exe.run({
      x: hostTensor('float32', [N, IN], x), w: hostTensor('float32', [OUT, IN], w), r: hostTensor('float32', [N, OUT], r),
      [wrt[0]!]: hostTensor('float32', [BS, IN], down), [wrt[1]!]: hostTensor('float32', [OUT, BS], up), [wrt[2]!]: hostTensor('float32', [1], [s]),
    });
    await exe.release();

    // y = W x + s · up tanh(down x); L = Σ r ⊙ y.
    const a = new Float64Array(N * BS);
    for (let n = 0; n < N; n++) for (let k = 0; k < BS; k++) {
      let z = 0;
      for (let i = 0; i < IN; i++) z += down[k * IN + i]! * x[n * IN + i]!;
      a[n * BS + k] = Math.tanh(z);
    }
    const y = new Float64Array(N * OUT), gUp = new Float64Array(OUT * BS), gDown = new Float64Array(BS * IN);
    let gS = 0;
    for (let n = 0; n < N; n++) for (let o = 0; o < OUT; o++) {
      let base = 0, f = 0;
      for (let i = 0; i < IN; i++) base += w[o * IN + i]! * x[n * IN + i]!;
      for (let k = 0; k < BS; k++) f += up[o * BS + k]! * a[n * BS + k]!;
      y[n * OUT + o] = base + s * f;
      gS += r[n * OUT + o]! * f;
      for (let k = 0; k < BS; k++) gUp[o * BS + k]! += s * r[n * OUT + o]! * a[n * BS + k]!;
    }
    for (let n = 0; n < N; n++) for (let k = 0; k < BS; k++) {
      let da = 0;
      for (let o = 0; o < OUT; o++) da += s * r[n * OUT + o]! * up[o * BS + k]!;
      const dz = da * (1 - a[n * BS + k]! ** 2);
      for (let i = 0; i < IN; i++) gDown[k * IN + i]! += dz * x[n * IN + i]!;
    }
    expect(maxRelError(out.y!.data as Float32Array, y)).toBeLessThan(1e-5);
    expect(maxRelError(out[gradName(wrt[0]!)]!.data as Float32Array, gDown)).toBeLessThan(1e-5);
    expect(maxRelError(out[gradName(wrt[1]!)]!.data as Float32Array, gUp)).toBeLessThan(1e-5);
    expect(Number(out[gradName(wrt[2]!)]!.data[0])).toBeCloseTo(gS, 4);
  });

  test('parallel with mam init (zero up) keeps the base logits; a non-zero up changes them', async () => {
    const weights = randomWeights(TINY, 1);
    const base = await (await logitsOf(TINY, [], weights, tinyIds)).run(new Map());
    const plugin = adapters({ kind: 'parallel', bottleneckSize: 4, init: 'mam' });
    const model = await logitsOf(TINY, [plugin], weights, tinyIds);
    expect(model.inputs.map((i) => i.name)).toContain('model.layers.1.self_attn.k_proj.adapter_down.weight');
    expect(model.inputs.length).toBe(2 * 3 * 2); // down and up on q, k, v of 2 layers
    const init = await initialValues(plugin, TINY, model.inputs);
    const down = init.get('model.layers.0.self_attn.v_proj.adapter_down.weight')!.data as Float32Array;
    expect(Math.max(...down.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(16));
    expect(Math.max(...down.map(Math.abs))).toBeGreaterThan(0);
    expect([...(init.get('model.layers.0.self_attn.v_proj.adapter_up.weight')!.data as Float32Array)].every((v) => v === 0)).toBe(true);
    const same = await model.run(init);
    expect(maxRelError(same, base)).toBeLessThan(1e-6);

    const moved = new Map(init);
    const up = 'model.layers.0.self_attn.v_proj.adapter_up.weight';
    moved.set(up, hostTensor('float32', init.get(up)!.shape, Array.from({ length: 8 * 4 }, (_, i) => 0.5 * Math.cos(i))));
    const changed = await (await logitsOf(TINY, [adapters({ kind: 'parallel', bottleneckSize: 4, init: 'mam' })], weights, tinyIds)).run(moved);
    expect(maxRelError(changed, base)).toBeGreaterThan(1e-3);
  });

  test('bert init: both matrices ~ N(0, 0.02²); learned scaling starts at 1', async () => {
    const plugin = adapters({ bottleneckSize: 8, scaling: 'learned' });
    const driver = new PluginDriver([plugin]);
    const graph = buildLossGraph(driver, contextFor(TINY, driver), TINY);
    const pending = graph.inputs.filter((i) => i.name.includes('.adapter_')).map((i) => ({ name: i.name, shape: i.v.shape as number[] }));
    expect(pending.length).toBe(2 * 3 * 3);
    const init = await initialValues(plugin, TINY, pending);
    expect(init.size).toBe(pending.length);
    const all = [...init].filter(([n]) => n.endsWith('.weight')).flatMap(([, t]) => [...(t.data as Float32Array)]);
    const std = Math.sqrt(all.reduce((s, v) => s + v * v, 0) / all.length);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
    expect([...init.get('model.layers.1.mlp.down_proj.adapter_scaling')!.data]).toEqual([1]);
  });

  test('bottleneckSize wider than a layer is clamped to its width, with one message naming layer and sizes', () => {
    const logs: string[] = [];
    const plugin = adapters({ bottleneckSize: 256 });
    const driver = new PluginDriver([plugin]);
    const graph = buildLossGraph(driver, contextFor(TINY, driver, 'train', logs), TINY);
    expect(logs.length).toBe(1);
    expect(logs[0]).toContain('model.layers.0.mlp.gate_proj');
    expect(logs[0]).toMatch(/bottleneckSize 256 .*width 16.*bottleneck of 16.*5 more adapted layers/);
    const shapes = new Map(graph.inputs.map((i) => [i.name, i.v.shape]));
    expect(shapes.get('model.layers.0.mlp.gate_proj.adapter_down.weight')).toEqual([16, 16]);
    expect(shapes.get('model.layers.1.mlp.down_proj.adapter_up.weight')).toEqual([16, 16]);
    expect((plugin.api as AdaptersApi).adapted.get('model.layers.1.mlp.down_proj')?.placement).toBe('output');

    const wide = adapters({ bottleneckSize: 256, clampToWidth: false });
    const quiet: string[] = [];
    const d2 = new PluginDriver([wide]);
    const g2 = buildLossGraph(d2, contextFor(TINY, d2, 'train', quiet), TINY);
    expect(quiet).toEqual([]);
    expect(g2.inputs.find((i) => i.name === 'model.layers.0.mlp.up_proj.adapter_down.weight')!.v.shape).toEqual([256, 16]);
  });

  test('a merged export is refused with what to do instead', () => {
    const plugin = adapters();
    expect(plugin.mergeable).toBe(false);
    expect((plugin.api as AdaptersApi).mergeable).toBe(false);
    const driver = new PluginDriver([plugin]);
    expect(() => plugin['export:merge']!(contextFor(TINY, driver), new Map(), new Map())).toThrow(MERGE_REFUSAL);
    expect(MERGE_REFUSAL).toMatch(/non-linear.*export\.merged to 'auto' or false.*export\/adapter/);
  });

  test('targets that match nothing are reported; options are strict', async () => {
    const driver = new PluginDriver([adapters({ targets: ['qkv'] })]);
    await expect(driver.validate(contextFor(TINY, driver))).rejects.toThrow(/targets \["qkv"\] match no linear layer/);
    expect(() => adapters({ bottleneck_size: 8 } as never)).toThrow();
  });

  test('dropout: per-step inverted masks on the adapter input in training, none in evaluation', async () => {
    const plugin = adapters({ bottleneckSize: 4, dropout: 0.25, targets: ['down_proj'] });
    const driver = new PluginDriver([plugin]);
    const train = buildLossGraph(driver, contextFor(TINY, driver), TINY);
    const evalGraph = buildLossGraph(driver, contextFor(TINY, driver, 'eval'), TINY);
    const mask = train.inputs.find((i) => i.name === 'model.layers.0.mlp.down_proj.adapter_dropout_mask');
    expect(mask?.v.shape).toEqual(['B', 'T', 16]);
    expect(evalGraph.inputs.some((i) => i.name.endsWith('adapter_dropout_mask'))).toBe(false);
    let state = 7;
    const random = () => ((state = (state * 48271) % 2147483647) / 2147483647);
    const feeds = plugin['step:feeds']!({ ...contextFor(TINY, driver), step: 0, trainable: new Set(), dims: { B: 4, T: 50 }, params: new Map(), random, stepSeed: 0, requestRetrace: () => {} }) as Record<string, HostTensor>;
    expect(Object.keys(feeds).length).toBe(2);
    const m = feeds['model.layers.1.mlp.down_proj.adapter_dropout_mask']!;
    expect(m.shape).toEqual([4, 50, 16]);
    const values = [...(m.data as Float32Array)];
    expect(new Set(values)).toEqual(new Set([0, Math.fround(1 / 0.75)]));
    const dropped = values.filter((v) => v === 0).length / values.length;
    expect(Math.abs(dropped - 0.25)).toBeLessThan(0.05);

    // With every mask at 1 the training loss is the evaluation loss; with the drawn masks it differs.
    const weights = randomWeights(TINY, 4);
    const pending = train.inputs.filter((i) => i.name.includes('.adapter_') && !i.name.endsWith('_mask')).map((i) => ({ name: i.name, shape: i.v.shape as number[] }));
    // Adapter entries of order 0.5, so that dropping some of their inputs moves the loss well above rounding.
    const init = new Map(pending.map((p, k) => [p.name, hostTensor('float32', p.shape, Array.from({ length: p.shape[0]! * p.shape[1]! }, (_, i) => 0.5 * Math.sin(i + k)))]));
    const batch = { input_ids: tinyIds, labels: hostTensor('int64', [2, 5], [5, 9, 3, 7, -100, 30, 4, 4, 11, -100]) };
    const lossOf = async (graph: typeof train, masks: Record<string, HostTensor>) => {
      const exe = await compile(graph, { resident: weights, dims: { B: 2, T: 5 } });
      const feeds: Record<string, HostTensor> = { ...batch, ...masks };
      for (const [n, t] of init) feeds[n] = t;
      const loss = Number((await exe.run(feeds)).loss!.data[0]);
      await exe.release();
      return loss;
    };
    const drawn = plugin['step:feeds']!({ ...contextFor(TINY, driver), step: 0, trainable: new Set(), dims: { B: 2, T: 5 }, params: new Map(), random, stepSeed: 0, requestRetrace: () => {} }) as Record<string, HostTensor>;
    const ones = Object.fromEntries(Object.entries(drawn).map(([n, t]) => [n, hostTensor('float32', t.shape, new Float32Array(t.data.length).fill(1))]));
    const evalLoss = await lossOf(evalGraph, {});
    expect(Math.abs((await lossOf(train, ones)) - evalLoss)).toBeLessThan(1e-6);
    expect(Math.abs((await lossOf(train, drawn)) - evalLoss)).toBeGreaterThan(1e-5); // the random model's logits move little
  });

  test('export → reload through bottleneckPeft gives the same logits (parallel, all-linear, learned scaling, mixed clamping)', async () => {
    const weights = randomWeights(TINY, 2);
    const plugin = adapters({ kind: 'parallel', bottleneckSize: 20, targets: 'all-linear', scaling: 'learned', nonLinearity: 'gelu' });
    const model = await logitsOf(TINY, [plugin], weights, tinyIds);
    const values = await initialValues(plugin, TINY, model.inputs);
    for (const [name, t] of values) if (name.endsWith('adapter_scaling')) values.set(name, hostTensor('float32', [1], [1.5]));
    expect(values.get('model.layers.0.mlp.down_proj.adapter_down.weight')!.shape).toEqual([20, 24]); // reads 24: not clamped
    expect(values.get('lm_head.adapter_down.weight')).toBeUndefined(); // all-linear leaves the head alone
    const before = await model.run(values);

    const dir = mkdtempSync(join(tmpdir(), 'adapters-'));
    const driver = new PluginDriver([plugin]);
    await plugin['export:artifacts']!(contextFor(TINY, driver), dir, values);
    const configPath = join(dir, 'adapter/adapter_config.json');
    const raw = JSON.parse(await Bun.file(configPath).text()) as Record<string, unknown>;
    expect(raw).toMatchObject({
      peft_type: 'BOTTLENECK', bottleneck_size: 20, non_linearity: 'gelu', use_parallel_adapter: true, scaling: 'learned', init_weights: 'bert',
      target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    });
    const tensors = unprefixed(await readAll(join(dir, 'adapter/adapter_model.safetensors')));
    expect(tensors.size).toBe(values.size);
    const reloaded = bottleneckPeft.plugin(raw, tensors, configPath);
    const again = await logitsOf(TINY, [reloaded], weights, tinyIds);
    expect(again.inputs.map((i) => i.name).sort()).toEqual([...tensors.keys()].sort());
    const after = await again.run(tensors);
    expect(maxRelError(after, before)).toBeLessThan(1e-6);
    expect(maxRelError(before, await (await logitsOf(TINY, [], weights, tinyIds)).run(new Map()))).toBeGreaterThan(1e-3);
  });

  test('bottleneckPeft names the field of a malformed config and checks shapes against the model', async () => {
    const tensors = new Map([
      ['model.layers.0.mlp.down_proj.adapter_down.weight', hostTensor('float32', [4, 16])],
      ['model.layers.0.mlp.down_proj.adapter_up.weight', hostTensor('float32', [16, 4])],
    ]);
    expect(() => bottleneckPeft.plugin({ peft_type: 'BOTTLENECK', non_linearity: 'swishy' }, tensors, 'a.json')).toThrow(/a\.json: field 'non_linearity'/);
    expect(() => bottleneckPeft.plugin({ peft_type: 'BOTTLENECK', scaling: 'learned' }, tensors, 'a.json')).toThrow(/field 'scaling'.*adapter_scaling' is missing/);
    const ok = bottleneckPeft.plugin({ peft_type: 'BOTTLENECK', bottleneck_size: 4 }, tensors, 'a.json');
    const driver = new PluginDriver([ok]);
    await driver.validate(contextFor(TINY, driver));
    const wrong = bottleneckPeft.plugin({ peft_type: 'BOTTLENECK', use_parallel_adapter: true }, new Map([
      ['model.layers.0.mlp.down_proj.adapter_down.weight', hostTensor('float32', [4, 16])],
      ['model.layers.0.mlp.down_proj.adapter_up.weight', hostTensor('float32', [16, 4])],
    ]), 'a.json');
    const d2 = new PluginDriver([wrong]);
    await expect(d2.validate(contextFor(TINY, d2))).rejects.toThrow(/adapter_down\.weight' is \[4,16\], but its parallel adapter reads width 24/);
  });
});
