/**
 * Half-precision frozen weights (`precision.weights`, core/train/precision.ts): the frozen base of a LoRA run on
 * stories260k is held in float16 / bfloat16 and widened to float32 in the graph. The reference is independent of
 * that code: the float32 trainer on a model folder whose weights were rounded to half precision on the host
 * (castHostTensor) and written back as float32. The two compute the same float32 arithmetic, so their losses and
 * gradients agree to float32 noise; the unrounded float32 model's loss differs by far more.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { valueAndGrad } from '../../core/autodiff/vjp.ts';
import { loadLatestCheckpoint } from '../../core/checkpoint/index.ts';
import { compile } from '../../core/compile.ts';
import type { Graph } from '../../core/ir/graph.ts';
import { specialize } from '../../core/ir/specialize.ts';
import { eliminateDeadCode } from '../../core/ir/transform.ts';
import { bf16ToF32, castHostTensor, f16ToF32, openSafetensors, readAll, writeSafetensors } from '../../core/io/safetensors.ts';
import { HALF_CONVERSION_CHUNK_BYTES } from '../../core/io/safetensors-read.ts';
import { trace } from '../../core/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../core/ir/host.ts';
import * as op from '../../core/ops/api.ts';
import { planMemory } from '../../core/memory/index.ts';
import { SMOLLM2_135M } from '../../core/models/config.ts';
import { parameterCount, paramSpecs } from '../../core/models/params.ts';
import { PluginError } from '../../core/plugin/driver.ts';
import type { Plugin } from '../../core/plugin/hooks.ts';
import { parseTrainConfig, type TrainConfig } from '../../core/train/config.ts';
import { setupModel, trainableSet } from '../../core/train/setup.ts';
import { train } from '../../core/train/trainer.ts';
import { readBatch } from '../../cli/grads.ts';
import { fullFinetune, lisa, lora } from '../../plugins/index.ts';
import { quiet, readJsonl, REPO, removeTempDirs, silentProgress, SHARED, STORIES, storiesMissing, tempDir, tinyConfig, writeTinyData } from './helpers.ts';
import type { HalfProbeResult } from '../../core/memory/half-probe.ts';

afterAll(removeTempDirs);

const missing = storiesMissing('half-precision tests');
const BATCH = join(SHARED, 'fixtures/stories260k/batch.safetensors');
const FORMATS = ['float16', 'bfloat16'] as const;
type Format = (typeof FORMATS)[number];
const loraPlugins = (): Plugin[] => [lora({ r: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'down_proj'] })];

/** stories260k with every weight rounded to `format` on the host and stored as float32 again. */
async function roundedModel(format: Format): Promise<string> {
  const dir = tempDir(`rounded-${format}`);
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    if (existsSync(join(STORIES, f))) copyFileSync(join(STORIES, f), join(dir, f));
  }
  const weights = await readAll(STORIES, { as: 'float32' });
  const rounded = new Map([...weights].map(([n, t]) => [n, castHostTensor(castHostTensor(t, format), 'float32')]));
  await writeSafetensors(join(dir, 'model.safetensors'), rounded);
  return dir;
}

function config(model: string, weights: 'float32' | Format, output = join(tempDir('setup'), 'run')): TrainConfig {
  return parseTrainConfig({ model, output, seed: 5, data: { train: 'unused' }, precision: { weights } });
}

/** Loss and gradients of the fixture batch, through the trainer's own set-up (setupModel) and step graph. */
async function lossAndGrads(cfg: TrainConfig, plugins: Plugin[]) {
  const m = await setupModel(cfg, plugins, () => 1, quiet);
  const trainable = trainableSet(m);
  const batch = await readBatch(BATCH);
  const [B, T] = batch.input_ids.shape as [number, number];
  const graph = valueAndGrad(m.forward, { of: 'loss', wrt: trainable });
  const exe = await compile(graph, { dims: { B, T } });
  const feeds: Record<string, HostTensor> = { ...batch };
  for (const i of exe.inputs) if (!(i.name in feeds)) feeds[i.name] = m.params.get(i.name)!;
  const out = await exe.run(feeds);
  await exe.release();
  const grads = new Map(trainable.map((n) => [n, out[`grad:${n}`]!]));
  return { m, loss: Number(out.loss!.data[0]), grads, graph: eliminateDeadCode(specialize(graph, { B, T })) };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Every weight-shaped float32 value the step graph materialises from half-precision storage. */
function widenedMatrices(graph: Graph): string[] {
  return graph.eqns.filter((e) => e.prim.name === 'widen' && e.out.shape.length === 2).map((e) => `%${e.out.id}[${e.out.shape}]`);
}

describe.skipIf(missing)('precision.weights', () => {
  for (const format of FORMATS) {
    test(`${format}: the step's loss and LoRA gradients equal the float32 model's on weights rounded to ${format}`, async () => {
      const half = await lossAndGrads(config(STORIES, format), loraPlugins());
      const ref = await lossAndGrads(config(await roundedModel(format), 'float32'), loraPlugins());
      const unrounded = await lossAndGrads(config(STORIES, 'float32'), loraPlugins());
      expect(Math.abs(half.loss - ref.loss)).toBeLessThanOrEqual(1e-5);
      expect([...half.grads.keys()]).toEqual([...ref.grads.keys()]);
      for (const [name, g] of half.grads) {
        // Gradients, like every trainable tensor, are float32.
        expect(g.dtype).toBe('float32');
        expect(g.data).toBeInstanceOf(Float32Array);
        const r = ref.grads.get(name)!.data as Float32Array;
        expect(maxAbsDiff(g.data as Float32Array, r)).toBeLessThanOrEqual(1e-5 * Math.max(1, maxAbs(r)));
      }
      // The rounding matters: the unrounded model's loss is another number (so the comparison above can fail).
      expect(Math.abs(unrounded.loss - ref.loss)).toBeGreaterThan(format === 'bfloat16' ? 1e-4 : 1e-6);

      // Storage: every frozen base weight in two bytes per parameter (bfloat16 as its bit patterns), none in float32.
      const config0 = half.m.ctx.model.config;
      let bytes = 0;
      for (const s of paramSpecs(config0)) {
        const t = half.m.params.get(s.name)!;
        expect(t.dtype).toBe(format === 'float16' ? 'float16' : 'uint16');
        expect(t.data).toBeInstanceOf(Uint16Array);
        bytes += t.data.byteLength;
      }
      expect(bytes).toBe(2 * parameterCount(config0));
      // No float32 copy of a weight matrix in the step graph: each is widened inside its product (widened_matmul)
      // and the tied embeddings only for the rows looked up.
      expect(widenedMatrices(half.graph)).toEqual([]);
      expect(half.graph.eqns.filter((e) => e.prim.name === 'widened_matmul').length).toBeGreaterThan(0);
    }, 60_000);
  }

  for (const format of FORMATS) {
    test(`${format}: a LoRA run trains; its first step's loss is the rounded float32 run's; state stays float32; the merged export is the widened weights`, async () => {
      const dir = tempDir(`train-${format}`);
      const data = writeTinyData(dir);
      const over = { train: { steps: 12, lr: 1e-2 }, data: { eval: data }, eval: { every: 0, baseline: true, samples: ['Once upon a time'], maxNewTokens: 8 }, export: { merged: true as const, adapters: false } };
      const halfCfg = tinyConfig(data, join(dir, 'half'), { ...over, precision: { weights: format } });
      const refCfg = tinyConfig(data, join(dir, 'ref'), { ...over, model: await roundedModel(format) });
      const half = await train({ config: halfCfg, plugins: loraPlugins(), progress: silentProgress, log: quiet });
      const ref = await train({ config: refCfg, plugins: loraPlugins(), progress: silentProgress, log: quiet });

      const records = readJsonl(join(halfCfg.output, 'metrics.jsonl'));
      const refRecords = readJsonl(join(refCfg.output, 'metrics.jsonl'));
      const baseline = records.find((r) => r.step === 0)!;
      const first = records.find((r) => r.step === 1)!;
      expect(Math.abs(first.loss! - refRecords.find((r) => r.step === 1)!.loss!)).toBeLessThanOrEqual(1e-5);
      expect(Math.abs(baseline.eval_loss! - refRecords.find((r) => r.step === 0)!.eval_loss!)).toBeLessThanOrEqual(1e-5);
      // It learns: the held-out loss after 12 steps is well below the untrained model's.
      expect(half.metrics.eval_loss!).toBeLessThan(baseline.eval_loss! - 0.05);

      // Trained tensors and the optimizer state (AdamW moments) are float32.
      const ckpt = (await loadLatestCheckpoint(halfCfg.output))!;
      expect(ckpt.tensors.size).toBeGreaterThan(0);
      for (const t of [...ckpt.tensors.values(), ...ckpt.optimizer.values()]) expect(t.dtype).toBe('float32');
      for (const t of half.trained.values()) expect(t.data).toBeInstanceOf(Float32Array);

      // The merged export: float32, frozen weights exactly the rounded ones, the adapted ones the rounded run's merge.
      const exported = await readAll(join(halfCfg.output, 'export/model/model.safetensors'));
      const refExported = await readAll(join(refCfg.output, 'export/model/model.safetensors'));
      const rounded = await readAll(refCfg.model);
      expect(exported.size).toBe(rounded.size);
      for (const [name, t] of exported) {
        expect(t.dtype).toBe('float32');
        const adapted = /\.(q_proj|v_proj|down_proj)\.weight$/.test(name);
        if (!adapted) expect(Buffer.from((t.data as Float32Array).buffer).equals(Buffer.from((rounded.get(name)!.data as Float32Array).buffer))).toBe(true);
        else expect(maxAbsDiff(t.data as Float32Array, refExported.get(name)!.data as Float32Array)).toBeLessThanOrEqual(1e-5);
      }
      expect(ref.step).toBe(half.step);
      // Generation (the cached decoder, its weights resident in half precision) matches the rounded run's, before and after.
      const samples = (dir: string) => JSON.parse(readFileSync(join(dir, 'samples.json'), 'utf8')) as { before: unknown[]; after: unknown[] };
      const s = samples(halfCfg.output);
      expect(s.after.length).toBe(1);
      expect(s).toEqual(samples(refCfg.output));
    }, 120_000);
  }

  test('activation checkpointing (the stage graphs recompute the widened products) trains the same steps', async () => {
    const dir = tempDir('half-ckpt');
    const data = writeTinyData(dir);
    const losses = async (checkpointing: boolean) => {
      const cfg = tinyConfig(data, join(dir, `run-${checkpointing}`), { train: { steps: 3, lr: 1e-2 }, memory: { checkpointing }, precision: { weights: 'bfloat16' } });
      await train({ config: cfg, plugins: loraPlugins(), progress: silentProgress, log: quiet });
      return readJsonl(join(cfg.output, 'metrics.jsonl')).filter((r) => r.loss !== undefined).map((r) => r.loss!);
    };
    const plain = await losses(false), checkpointed = await losses(true);
    expect(plain.length).toBe(3);
    for (let i = 0; i < 3; i++) expect(Math.abs(checkpointed[i]! - plain[i]!)).toBeLessThanOrEqual(1e-5);
  }, 60_000);

  test('full fine-tuning keeps the weights it trains in float32 and stores only the frozen ones in half precision', async () => {
    const { m, grads } = await lossAndGrads(config(STORIES, 'bfloat16'), [fullFinetune({ exclude: 'embed_tokens' })]);
    expect(m.params.get('model.embed_tokens.weight')!.dtype).toBe('uint16');
    expect(m.params.get('model.layers.0.self_attn.q_proj.weight')!.dtype).toBe('float32');
    expect(grads.has('model.embed_tokens.weight')).toBe(false);
    expect(grads.size).toBe(paramSpecs(m.ctx.model.config).length - 1);
    for (const g of grads.values()) expect(g.dtype).toBe('float32');
  });

  test('LISA is refused before any weight is read, by the planner and by the trainer, naming the setting', async () => {
    const cfg = config(STORIES, 'float16');
    // The planner reads config.json only: refused there, the run never reaches the weights.
    const planned = planMemory(cfg, [lisa()]);
    await expect(planned).rejects.toBeInstanceOf(PluginError);
    await expect(planned).rejects.toThrow(/precision\.weights 'float16' cannot be combined with LISA/);
    await expect(setupModel(cfg, [lisa()], () => 1, quiet)).rejects.toThrow(/precision\.weights 'float16' cannot be combined with LISA/);
  });

  test('a trainable set that reaches a half-precision weight later (as a retrace would) is refused, naming the weight', async () => {
    let calls = 0;
    // Trains nothing of the base at first (so nothing is kept float32), then asks for the final norm.
    const switching: Plugin = { name: 'test:switching', 'params:trainable': (_ctx, current) => new Set([...current, ...(calls++ > 0 ? ['model.norm.weight'] : [])]) };
    const m = await setupModel(config(STORIES, 'float16'), [...loraPlugins(), switching], () => 1, quiet);
    expect(() => trainableSet(m)).toThrow(/plugins asked to train model\.norm\.weight, stored in half precision \(precision\.weights\)/);
  });

  test('the planner counts 2 bytes per frozen parameter (and the widened temporaries, on the SmolLM2-135M shape)', async () => {
    // The planner reads config.json alone, so the SmolLM2-135M shape needs no weights.
    const smol = tempDir('plan-smollm2');
    writeFileSync(join(smol, 'config.json'), JSON.stringify(SMOLLM2_135M));
    for (const model of [STORIES, smol]) {
      const cfg = (weights: 'float32' | Format) => parseTrainConfig({ model, output: join(tempDir('plan'), 'run'), data: { train: 'unused', maxLength: 256 }, train: { batchSize: 4 }, precision: { weights } });
      const f32 = await planMemory(cfg('float32'), loraPlugins());
      const frozen = f32.parameters - f32.trainableParameters;
      for (const format of FORMATS) {
        const plan = await planMemory(cfg(format), loraPlugins());
        const storage = plan.items.find((i) => i.component.startsWith(`${format} storage of the frozen base weights`))!;
        expect(storage.bytes).toBe(-2 * frozen);
        // The step's widened copies (one matrix at a time; bfloat16's lookup indices beside it) take back a little.
        if (model === smol) expect(f32.totalBytes - plan.totalBytes).toBeGreaterThan(0.8 * 2 * frozen);
      }
    }
  });
});

test('widen and widened_matmul are exact for every float16 and bfloat16 bit pattern, both orientations', async () => {
  const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const reference = { float16: f16ToF32(bits), bfloat16: bf16ToF32(bits) };
  // The products check the forward (a @ W^T) and backward (a @ W) widenings through an identity: finite values only
  // (0 * inf is NaN), compared by value (a sum with zeros turns -0 into +0).
  const finite = (format: Format) => Uint16Array.from(bits, (b) => (Number.isFinite(reference[format][b]!) ? b : 0));
  const eye = Float32Array.from({ length: 256 * 256 }, (_, i) => (i % 257 === 0 ? 1 : 0));
  for (const format of FORMATS) {
    const dtype = format === 'float16' ? 'float16' : 'uint16';
    const graph = trace((g) => {
      const s = g.input('s', dtype, [65536]), w = g.input('w', dtype, [256, 256]), a = g.input('a', 'float32', [256, 256]);
      return { all: op.widen(s, format), fwd: op.matmul(a, op.widen(w, format), { tb: true }), bwd: op.matmul(a, op.widen(w, format)) };
    });
    expect(graph.eqns.filter((e) => e.prim.name === 'widened_matmul').length).toBe(2);
    const exe = await compile(graph);
    const w = finite(format);
    const out = await exe.run({ s: hostTensor(dtype, [65536], bits), w: hostTensor(dtype, [256, 256], w), a: hostTensor('float32', [256, 256], eye) });
    await exe.release();
    const all = out.all!.data as Float32Array;
    const same = (x: number, y: number) => (Number.isNaN(y) ? Number.isNaN(x) : Object.is(x, y));
    const wrong = [...bits].filter((b) => !same(all[b]!, reference[format][b]!));
    expect(wrong.length).toBe(0);
    const wf = f16OrBf16(format, w);
    const fwd = out.fwd!.data as Float32Array, bwd = out.bwd!.data as Float32Array;
    let mismatches = 0;
    for (let r = 0; r < 256; r++) {
      for (let c = 0; c < 256; c++) {
        if (bwd[r * 256 + c] !== wf[r * 256 + c]) mismatches++;
        if (fwd[r * 256 + c] !== wf[c * 256 + r]) mismatches++;
      }
    }
    expect(mismatches).toBe(0);
  }
});

function f16OrBf16(format: Format, bits: Uint16Array): Float32Array {
  return format === 'float16' ? f16ToF32(bits) : bf16ToF32(bits);
}

test('a float32 tensor read as float16 / bfloat16 (a few MiB at a time) is rounded exactly as castHostTensor rounds it', async () => {
  const n = 2 * (HALF_CONVERSION_CHUNK_BYTES / 4) + 123; // two whole chunks and a partial one
  const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 10 ** ((i % 13) - 8));
  values.set([0, -0, Infinity, -Infinity, NaN, 65520, 1e-8, 3.4e38], 0);
  const dir = tempDir('half-read');
  const file = join(dir, 'w.safetensors');
  await writeSafetensors(file, new Map([['w', hostTensor('float32', [n], values)]]));
  const st = await openSafetensors(file);
  try {
    for (const format of FORMATS) {
      const read = await st.read('w', { as: format });
      const expected = castHostTensor(hostTensor('float32', [n], values), format);
      expect(read.dtype).toBe(format);
      expect(Buffer.from((read.data as Uint16Array).buffer).equals(Buffer.from((expected.data as Uint16Array).buffer))).toBe(true);
    }
  } finally {
    await st.close();
  }
});

/** Runs core/memory/half-probe.ts in a process of its own and returns its result line. */
async function runProbe(args: string[]): Promise<HalfProbeResult> {
  const child = Bun.spawn([process.execPath, join(REPO, 'core/memory/half-probe.ts'), ...args], { stdout: 'pipe', stderr: 'pipe' });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`half-probe ${args.join(' ')} failed (${code}): ${err}`);
  return JSON.parse(out.trim().split('\n').at(-1)!) as HalfProbeResult;
}

describe('measured memory of the SmolLM2-135M shape (child processes, VmRSS)', () => {
  test("a float32 checkpoint read through the trainer's loader: at most 2.05 bytes per parameter in float16 and bfloat16", async () => {
    const dir = tempDir('probe-f32');
    await runProbe(['write', dir, 'float32']); // a random SmolLM2-135M checkpoint, float32
    for (const format of FORMATS) {
      const r = await runProbe(['read', dir, format]);
      expect(r.source).toBe('float32');
      expect(r.params).toBe(134_515_008);
      expect(r.heldBytes).toBe(2 * r.params);
      expect(r.bytesPerParam).toBeLessThanOrEqual(2.05);
      // Rounded a few MiB at a time: the peak while reading stays near what is kept (a float32 copy would add 4).
      expect(r.peakBytesPerParam!).toBeLessThan(2.5);
    }
  }, 180_000);
});

test('an invalid precision.weights is refused, naming the field', () => {
  expect(() => parseTrainConfig({ model: 'x', precision: { weights: 'float8' } })).toThrow(/precision\.weights: Invalid option: expected one of "float32"\|"float16"\|"bfloat16"/);
  expect(() => parseTrainConfig({ model: 'x', precision: { weigths: 'float16' } })).toThrow(/precision: Unrecognized key: "weigths"/);
  expect(parseTrainConfig({ model: 'x' }).precision.weights).toBe('float32');
});
