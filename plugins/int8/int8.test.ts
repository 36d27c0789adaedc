/**
 * 8-bit frozen weights: the quantiser (error bound per element, exactness on the grid), the in-graph dequantisation
 * primitives (finite differences, bit-identity with the TypeScript reference), LoRA gradients through the int8 base,
 * training, merge-and-export into the dequantised weights, the memory plan, option errors, and the measured bytes per
 * weight and backward-pass memory (child processes).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { compile, eliminateDeadCode, hostTensor, lowerGraph, nn, op, paramSpecs, readAll, specialize, trace, valueAndGrad, type HostTensor, type ModelConfig, type Plugin, type PluginContext, type Tensor } from '../../core/index.ts';
import { loadModel } from '../../core/models/load.ts';
import { buildCausalLM } from '../../core/models/llama.ts';
import { PluginDriver } from '../../core/plugin/driver.ts';
import { createPlanner } from '../../core/memory/index.ts';
import { setupModel, trainableSet, type RunModel } from '../../core/train/setup.ts';
import { train } from '../../core/train/trainer.ts';
import { gradTable, type GradCase } from '../../tests/gradcheck.ts';
import { quiet, REPO, removeTempDirs, silentProgress, storiesMissing, tempDir, tinyConfig, writeTinyData } from '../../tests/train/helpers.ts';
import { BUILTIN_PLUGINS } from '../index.ts';
import { lora, type LoraApi } from '../lora/index.ts';
import { nf4 } from '../nf4/index.ts';
import { EXTRA_NODES_PER_PRODUCT, int8, INT8, type Int8Api } from './index.ts';
import { int8Dequantize, int8InputTypes, int8Matmul, type Int8Params } from './dequantize.ts';
import { dequantizeInt8, int8Bytes, int8Layout, quantizeInt8, type Int8Tensor } from './quantize.ts';
import type { ProbeResult, StepProbeResult } from './memory-probe.ts';

afterAll(removeTempDirs);

/** Deterministic N(0, 1) samples (xorshift32 + Box-Muller). */
function gaussian(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

function rms(a: ArrayLike<number>, b?: ArrayLike<number>): number {
  let t = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - (b ? b[i]! : 0);
    t += d * d;
  }
  return Math.sqrt(t / a.length);
}

/** The largest error relative to each element's block scale, after the bound's float32 rounding term. */
function checkBound(w: Float32Array, q: Int8Tensor): number {
  const back = dequantizeInt8(q);
  let worst = 0;
  for (let i = 0; i < w.length; i++) {
    const s = q.scales[Math.floor(i / q.layout.blockSize)]!;
    const err = Math.abs(w[i]! - back[i]!);
    // |w - k s| <= s / 2 exactly; storing k s in float32 adds at most half an ulp of the result (2^-24 |ŵ|).
    expect(err).toBeLessThanOrEqual(s / 2 + 2 ** -24 * Math.abs(back[i]!));
    worst = Math.max(worst, err / s);
  }
  return worst;
}

describe('int8 quantisation', () => {
  test('per row: one scale per output row, every element within scale / 2, and the row maximum on ±127', () => {
    const [out, inp] = [48, 40];
    const w = gaussian(out * inp, 11);
    for (let r = 0; r < out; r++) w[r * inp + (r % inp)] = (r % 2 ? -1 : 1) * (4 + r / 8); // an outlier per row, of either sign
    const q = quantizeInt8(w, [out, inp]);
    expect(q.layout).toEqual({ numel: out * inp, blockSize: inp, blocks: out, paddedNumel: out * inp });
    expect(q.codes.length).toBe(out * inp);
    expect(q.scales.length).toBe(out);
    for (let r = 0; r < out; r++) {
      expect(q.scales[r]).toBe(Math.fround((4 + r / 8) / 127));
      expect(q.codes[r * inp + (r % inp)]).toBe(r % 2 ? -127 : 127);
    }
    // The bound is nearly reached (a quantiser whose step is finer than it claims would stay far below it).
    expect(checkBound(w, q)).toBeGreaterThan(0.45);
  });

  test('blockwise with a padded last block: the bound holds with each block\'s own scale, padding codes are 0', () => {
    const w = gaussian(130, 5);
    const q = quantizeInt8(w, [10, 13], { blockSize: 32 });
    expect(q.layout).toEqual({ numel: 130, blockSize: 32, blocks: 5, paddedNumel: 160 });
    expect([...q.codes.subarray(130)].every((c) => c === 0)).toBe(true);
    for (let b = 0; b < 5; b++) {
      let m = 0;
      for (let i = 32 * b; i < Math.min(32 * b + 32, 130); i++) m = Math.max(m, Math.abs(w[i]!));
      expect(q.scales[b]).toBe(Math.fround(m / 127));
    }
    expect(checkBound(w, q)).toBeGreaterThan(0.3);
  });

  test('values on the grid (k · scale, |k| <= 127) come back exactly', () => {
    for (const [shape, blockSize] of [[[6, 50], undefined], [[7, 9], 16]] as const) {
      const numel = shape[0] * shape[1];
      const l = int8Layout(numel, blockSize ?? shape[1]);
      const rand = gaussian(numel + l.blocks, 77);
      // Scales with at most 16 significant bits, so 127 · scale is exact in float32 and absmax / 127 gives the scale back.
      const scales = Array.from({ length: l.blocks }, (_, b) => Math.fround(Math.round((0.5 + Math.abs(rand[numel + b]!)) * 2 ** 15) * 2 ** -15 * 2 ** (-b % 5 - 3)));
      const k = Array.from({ length: numel }, (_, i) => (i % l.blockSize === 0 ? (i % 2 ? -127 : 127) : Math.max(-127, Math.min(127, Math.round(40 * rand[i]!)))));
      const w = Float32Array.from(k, (kv, i) => kv * scales[Math.floor(i / l.blockSize)]!);
      const q = quantizeInt8(w, shape, blockSize ? { blockSize } : {});
      expect([...q.scales]).toEqual(scales);
      expect([...q.codes.subarray(0, numel)]).toEqual(k);
      expect([...dequantizeInt8(q)]).toEqual([...w]);
    }
  });

  test('an all-zero row has scale 0 and stays exactly 0; non-finite weights are refused', () => {
    const w = Float32Array.from([0, 0, 0, 0, 1, -2, 0.5, 0]);
    const q = quantizeInt8(w, [2, 4]);
    expect([...q.scales]).toEqual([0, Math.fround(2 / 127)]);
    expect([...dequantizeInt8(q).subarray(0, 4)]).toEqual([0, 0, 0, 0]);
    expect(() => quantizeInt8(Float32Array.from([1, Number.NaN]), [1, 2])).toThrow('element 1 of the tensor [1,2] is NaN');
    expect(() => quantizeInt8(Float32Array.from([Infinity, 1]), [1, 2])).toThrow('is Infinity');
  });

  test('round trip of Gaussian weights: the RMS error is that of a uniform error over one step (scale / sqrt(12))', () => {
    const w = gaussian(1 << 20, 12345);
    console.log('scale per     | rel. RMS error | predicted s/sqrt(12) | bytes/weight');
    for (const blockSize of [undefined, 64, 256]) {
      const q = quantizeInt8(w, [1024, 1024], blockSize ? { blockSize } : {});
      const rel = rms(w, dequantizeInt8(q)) / rms(w);
      const predicted = rms(q.scales) / Math.sqrt(12) / rms(w);
      console.log(`${(blockSize ? `block ${blockSize}` : 'row (1024)').padEnd(13)} | ${rel.toFixed(5).padStart(14)} | ${predicted.toFixed(5).padStart(20)} | ${(int8Bytes(q.layout) / w.length).toFixed(4)}`);
      expect(Math.abs(rel / predicted - 1)).toBeLessThan(0.02);
    }
  });

  test('layout errors name the problem', () => {
    expect(() => int8Layout(0, 4)).toThrow('cannot quantise a tensor of 0 elements');
    expect(() => int8Layout(8, 0)).toThrow('blockSize must be a positive integer, got 0');
    expect(() => quantizeInt8(new Float32Array(5), [2, 3])).toThrow('data has 5 elements, shape [2,3] needs 6');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The primitives: derivatives against finite differences (float64), and the graph against the TypeScript reference.

const rowwise: Int8Params = { shape: [6, 8], blockSize: 8 };
const padded: Int8Params = { shape: [5, 6], blockSize: 8 }; // 30 weights -> 4 blocks, the last one padded
const codesInput = (p: Int8Params) => {
  const n = int8Layout(p.shape[0]! * p.shape[1]!, p.blockSize).paddedNumel;
  return { shape: [n], kind: 'int' as const, values: Array.from({ length: n }, (_, i) => ((i * 53) % 255) - 127) };
};
const scalesInput = (p: Int8Params) => ({ shape: [int8Layout(p.shape[0]! * p.shape[1]!, p.blockSize).blocks], kind: 'positive' as const });
const asQs = ([c, s]: readonly Tensor[]): Tensor[] => [op.cast(c!, 'int8'), s!];

const PRIMITIVE_CASES: GradCase[] = [
  { name: 'int8_matmul x W^T (x, scales)', inputs: [{ shape: [2, 3, 8] }, codesInput(rowwise), scalesInput(rowwise)], fn: (x, ...q) => int8Matmul(x!, asQs(q), rowwise, true) },
  { name: 'int8_matmul x W (the backward orientation)', inputs: [{ shape: [4, 6] }, codesInput(rowwise), scalesInput(rowwise)], fn: (x, ...q) => int8Matmul(x!, asQs(q), rowwise, false) },
  { name: 'int8_matmul with a padded last block', inputs: [{ shape: [2, 6] }, codesInput(padded), scalesInput(padded)], fn: (x, ...q) => int8Matmul(x!, asQs(q), padded, true) },
  { name: 'int8_dequantize (scales)', inputs: [codesInput(rowwise), scalesInput(rowwise)], fn: (...q) => int8Dequantize(asQs(q), rowwise) },
  { name: 'int8_dequantize padded', inputs: [codesInput(padded), scalesInput(padded)], fn: (...q) => int8Dequantize(asQs(q), padded) },
];

gradTable('int8 primitives: derivatives vs finite differences', PRIMITIVE_CASES);

describe('int8 primitives: the compiled graph', () => {
  test('dequantises bit-identically to the TypeScript reference, and int8_matmul equals x W^T and x W with that W', async () => {
    for (const [shape, blockSize] of [[[48, 40], 40], [[48, 40], 64], [[30, 7], 32]] as const) {
      const p: Int8Params = { shape: [...shape], blockSize };
      const w = gaussian(shape[0] * shape[1], 9);
      const q = quantizeInt8(w, shape, { blockSize });
      const reference = dequantizeInt8(q);
      const types = int8InputTypes(p);
      const g = trace((g) => {
        const x = g.input('x', 'float32', ['B', 3, shape[1]]); // [B, 3, in]
        const xt = g.input('xt', 'float32', ['B', shape[0]]); // [B, out]
        const qs = types.map((t) => g.input(t.suffix, t.dtype, t.shape));
        const wf = g.input('w_float', 'float32', [...shape]);
        return {
          w: int8Dequantize(qs, p),
          y: int8Matmul(x, qs, p), y_ref: nn.linear(x, wf), // [B, 3, out]
          yt: int8Matmul(xt, qs, p, false), yt_ref: op.matmul(xt, wf), // [B, in]
        };
      });
      const exe = await compile(g, { dims: { B: 2 } });
      const out = await exe.run({
        x: hostTensor('float32', [2, 3, shape[1]], gaussian(6 * shape[1], 4)),
        xt: hostTensor('float32', [2, shape[0]], gaussian(2 * shape[0], 6)),
        int8_codes: hostTensor('int8', [q.layout.paddedNumel], q.codes),
        int8_scales: hostTensor('float32', [q.layout.blocks], q.scales),
        w_float: hostTensor('float32', [...shape], reference),
      });
      await exe.release();
      expect([...(out.w!.data as Float32Array)]).toEqual([...reference]);
      for (const [a, b] of [['y', 'y_ref'], ['yt', 'yt_ref']] as const) {
        const y = out[a]!.data as Float32Array, yRef = out[b]!.data as Float32Array;
        for (let i = 0; i < y.length; i++) expect(Math.abs(y[i]! - yRef[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(yRef[i]!)));
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// With the trainer on stories260k.

const missing = storiesMissing('int8 model tests');
const LORA = { r: 4, alpha: 8, targets: 'all-linear' };

/** Same non-zero B in every run, so the gradients of A are not trivially zero. */
function fillB(m: RunModel): void {
  for (const [name, t] of m.params) {
    if (name.endsWith('lora_B.weight')) m.params.set(name, hostTensor('float32', t.shape, Float32Array.from(t.data as Float32Array, (_, i) => Math.sin(i + name.length) * 0.05)));
  }
}

async function lossAndGrads(m: RunModel): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const trainable = trainableSet(m);
  const [B, T] = [2, 24];
  const exe = await compile(valueAndGrad(m.forward, { of: 'loss', wrt: trainable }), { dims: { B, T } });
  const feeds: Record<string, HostTensor> = {
    input_ids: hostTensor('int64', [B, T], Array.from({ length: B * T }, (_, i) => (i * 37 + 5) % 512)),
    labels: hostTensor('int64', [B, T], Array.from({ length: B * T }, (_, i) => (i % 7 === 0 ? -100 : (i * 11 + 3) % 512))),
  };
  for (const i of exe.inputs) if (!(i.name in feeds)) feeds[i.name] = m.params.get(i.name)!;
  const out = await exe.run(feeds);
  await exe.release();
  return { loss: Number(out.loss!.data[0]), grads: new Map(trainable.map((n) => [n, out[`grad:${n}`]!.data as Float32Array])) };
}

/** Logits [B, T, V] of the model with the given plugins' hooks (none: plain weights), every input fed. */
async function logits(config: ModelConfig, plugins: Plugin[], values: (name: string) => HostTensor | undefined, ids: HostTensor): Promise<Float32Array> {
  const driver = new PluginDriver(plugins);
  const ctx: PluginContext = { model: { config, specs: paramSpecs(config) }, run: { dir: '', seed: 0, totalSteps: 1 }, phase: 'eval', log: () => {}, plugin: (n) => driver.api(n) };
  const [B, T] = ids.shape as [number, number];
  const graph = trace((g) => ({
    logits: buildCausalLM(g, config, {
      batch: B, seq: T,
      hooks: { param: driver.param(ctx, (g2, name, shape) => g2.input(name, 'float32', shape)), linear: driver.linear(ctx, (_s, x, w, b) => nn.linear(x, w, b)) },
    }).logits,
  }));
  const exe = await compile(graph);
  const feeds: Record<string, HostTensor> = { input_ids: ids };
  for (const i of exe.inputs) {
    if (i.name === 'input_ids') continue;
    const v = values(i.name);
    if (!v) throw new Error(`no value for ${i.name}`);
    feeds[i.name] = v;
  }
  const out = await exe.run(feeds);
  await exe.release();
  return out.logits!.data as Float32Array;
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((w, v, i) => Math.max(w, Math.abs(v - b[i]!)), 0);

describe.skipIf(missing)('8-bit LoRA on stories260k', () => {
  test('set-up: the float32 linear weights are never loaded, int8 codes and per-row scales are fed in their place', async () => {
    const dir = tempDir('int8-setup');
    const cfg = tinyConfig(writeTinyData(dir), join(dir, 'run'));
    const plugin = int8();
    const m = await setupModel(cfg, [plugin, lora(LORA)], () => 1, quiet);
    const linear = m.ctx.model.specs.filter((s) => s.kind === 'linear');
    expect(linear.length).toBe(35);
    for (const s of linear) {
      expect(m.params.has(s.name)).toBe(false);
      expect(m.params.get(`${s.name}.int8_codes`)?.dtype).toBe('int8');
      expect(m.params.get(`${s.name}.int8_codes`)?.data.byteLength).toBe(s.shape[0]! * s.shape[1]!);
      expect(m.params.get(`${s.name}.int8_scales`)?.shape).toEqual([s.shape[0]!]);
    }
    expect(m.params.get('model.embed_tokens.weight')?.dtype).toBe('float32'); // not a target: kept as it was
    expect((plugin.api as Int8Api).quantized.size).toBe(35);
  });

  for (const recomputeBackward of [true, false]) {
    test(`LoRA gradients through the int8 weights equal the float32 model's on the dequantised weights (recomputeBackward: ${recomputeBackward})`, async () => {
      const dir = tempDir('int8-grads');
      const cfg = tinyConfig(writeTinyData(dir), join(dir, 'run'));
      const q = int8({ recomputeBackward });
      const m8 = await setupModel(cfg, [q, lora(LORA)], () => 1, quiet);
      const ref = await setupModel(cfg, [lora(LORA)], () => 1, quiet);
      const api = q.api as Int8Api;
      for (const name of api.quantized.keys()) ref.params.set(name, api.dequantize(name)); // W = dequant(codes), float32
      fillB(m8);
      fillB(ref);
      const a = await lossAndGrads(m8), b = await lossAndGrads(ref);
      expect(a.grads.size).toBe(70);
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5 * Math.abs(b.loss));
      let worst = 0;
      for (const [name, g] of b.grads) {
        expect(rms(g)).toBeGreaterThan(0);
        worst = Math.max(worst, rms(a.grads.get(name)!, g) / rms(g));
      }
      console.log(`max relative gradient difference over ${b.grads.size} LoRA tensors: ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-5);
      // The same model with the original float32 weights is measurably different: the test sees the quantisation.
      const orig = await setupModel(cfg, [lora(LORA)], () => 1, quiet);
      fillB(orig);
      const c = await lossAndGrads(orig);
      expect(Math.abs(c.loss - a.loss)).toBeGreaterThan(1e-6);
      let moved = 0;
      for (const [name, g] of c.grads) moved = Math.max(moved, rms(a.grads.get(name)!, g) / rms(g));
      console.log(`the same with the original float32 weights: loss ${c.loss.toFixed(6)} vs ${a.loss.toFixed(6)}, max relative gradient difference ${moved.toExponential(2)}`);
      expect(moved).toBeGreaterThan(100 * worst);
    });
  }

  test('a short LoRA run on the int8 base lowers the loss', async () => {
    const dir = tempDir('int8-train');
    const cfg = tinyConfig(writeTinyData(dir, 8), join(dir, 'run'), { train: { steps: 30, batchSize: 4, lr: 1e-2, schedule: 'constant' } });
    const losses: number[] = [];
    const probe = { name: 'probe', 'step:after': (_c: unknown, r: { loss: number }) => { losses.push(r.loss); } };
    await train({ config: cfg, plugins: [int8(), lora(LORA), probe], resume: false, log: quiet, progress: silentProgress });
    const first = losses.slice(0, 4).reduce((a, b) => a + b) / 4, last = losses.slice(-4).reduce((a, b) => a + b) / 4;
    console.log(`8-bit LoRA: loss ${first.toFixed(4)} -> ${last.toFixed(4)} over ${losses.length} steps`);
    expect(losses.length).toBe(30);
    expect(last).toBeLessThan(first - 0.3);
  }, 120_000);

  test('export: the merged model is dequantised base + s·BA, and gives the logits of the adapter on the int8 base', async () => {
    const dir = tempDir('int8-export');
    const config = tinyConfig(writeTinyData(dir), join(dir, 'run'), { train: { steps: 4, lr: 2e-2 }, export: { merged: true, adapters: true } });
    const q = int8(), l = lora(LORA);
    const result = await train({ config, plugins: [q, l], progress: silentProgress, log: quiet });
    const exportDir = join(config.output, 'export/model');
    const raw = await readAll(join(exportDir, 'model.safetensors'));
    expect([...raw.keys()].some((n) => n.includes('int8'))).toBe(false); // a plain float32 model
    expect([...raw.values()].every((t) => t.dtype === 'float32')).toBe(true);
    const original = await loadModel(config.model);
    const api = q.api as Int8Api, loraApi = l.api as LoraApi;
    // Exactly LoRA's merge into the dequantised weights, tensor by tensor.
    const dequantized = new Map(original.weights);
    for (const w of api.quantized.keys()) dequantized.set(w, api.dequantize(w));
    const expected = loraApi.merge(dequantized, result.trained);
    for (const [name, t] of expected) expect([...(raw.get(name)!.data as Float32Array)]).toEqual([...(t.data as Float32Array)]);
    // And the model reloads and computes what the adapter on the int8 base computes.
    const merged = await loadModel(exportDir);
    const packed = new Map([...api.quantized.keys()].flatMap((w) => [...api.packed(w)]));
    const ids = hostTensor('int64', [2, 12], Array.from({ length: 24 }, (_, i) => (i * 29 + 3) % 512));
    const adapterOnInt8 = await logits(merged.config, [q, l], (n) => packed.get(n) ?? result.trained.get(n) ?? original.weights.get(n), ids);
    const fromMerged = await logits(merged.config, [], (n) => merged.weights.get(n), ids);
    const diff = maxAbsDiff(adapterOnInt8, fromMerged);
    console.log(`merged export vs adapter on the int8 base: max |logit difference| ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);
    // LoRA merged into the original float32 weights instead differs from the export in every quantised tensor.
    const wrong = loraApi.merge(original.weights, result.trained);
    for (const w of api.quantized.keys()) expect(rms(wrong.get(w)!.data as Float32Array, raw.get(w)!.data as Float32Array)).toBeGreaterThan(0);
    expect([...result.trained].some(([n, t]) => n.endsWith('lora_B.weight') && (t.data as Float32Array).some((v) => v !== 0))).toBe(true);
  }, 120_000);

  test('memory:plan: 1 byte per weight plus the scales replaces the 4 bytes per element the planner counts', async () => {
    const dir = tempDir('int8-plan');
    const cfg = tinyConfig(writeTinyData(dir), join(dir, 'run'));
    const plan8 = (await createPlanner(cfg, [int8(), lora(LORA)])).plan();
    const planF = (await createPlanner(cfg, [lora(LORA)])).plan();
    const storage = plan8.items.find((i) => i.component.startsWith('int8 storage'))!;
    const weights8 = plan8.items.find((i) => i.component.startsWith('weights'))!;
    const weightsF = planF.items.find((i) => i.component.startsWith('weights'))!;
    const { config } = await loadModel(cfg.model);
    const linear = paramSpecs(config).filter((s) => s.kind === 'linear');
    const n = linear.reduce((s, p) => s + p.shape[0]! * p.shape[1]!, 0);
    const stored = linear.reduce((s, p) => s + p.shape[0]! * p.shape[1]! + 4 * p.shape[0]!, 0); // codes + a float32 scale per row
    console.log(`plan: ${n} quantised weights, float32 ${4 * n} B -> int8 ${stored} B (${(stored / n).toFixed(3)} B each); item ${storage.bytes} B: ${storage.note}`);
    expect(storage.bytes).toBeLessThan(0);
    // What the run holds for the base weights: the float32 ones that stay, plus the codes and scales.
    expect(weights8.bytes + storage.bytes).toBe(weightsF.bytes - 4 * n + stored);
    const largest = Math.max(...linear.map((s) => s.shape[0]! * s.shape[1]!));
    expect(plan8.items.find((i) => i.component.startsWith('int8 dequantisation temporaries'))!.bytes).toBe(8 * largest);
    // Blockwise: a scale per 16 weights instead of per row (64 or 172 weights here) costs more.
    const planB = (await createPlanner(cfg, [int8({ blockSize: 16 }), lora(LORA)])).plan();
    expect(planB.items.find((i) => i.component.startsWith('int8 storage'))!.bytes).toBe(n + 4 * (n / 16) - 4 * (n + n / 16));
  });

  test('the session cost per product matches the ONNX nodes int8_matmul adds', async () => {
    const dir = tempDir('int8-nodes');
    const cfg = tinyConfig(writeTinyData(dir), join(dir, 'run'));
    const nodes = async (plugins: Plugin[]) => {
      const m = await setupModel(cfg, plugins, () => 1, quiet);
      const g = eliminateDeadCode(specialize(valueAndGrad(m.forward, { of: 'loss', wrt: trainableSet(m) }), { B: 2, T: 16 }));
      return { nodes: lowerGraph(g).model.nodes.length, products: g.eqns.filter((e) => e.prim.name === 'int8_matmul').length };
    };
    const loraTargets = { r: 4, targets: ['q_proj', 'v_proj'] };
    const plain = await nodes([lora(loraTargets)]);
    const quant = await nodes([int8(), lora(loraTargets)]);
    const perProduct = (quant.nodes - plain.nodes) / quant.products;
    console.log(`ONNX nodes: LoRA ${plain.nodes}, on the int8 base ${quant.nodes} for ${quant.products} int8_matmul (${perProduct.toFixed(2)} extra each)`);
    // Forward and backward for the 35 linear weights, but layer 0's q, k, v: their dx would flow into the frozen embeddings.
    expect(quant.products).toBe(35 + 35 - 3);
    expect(Math.abs(perProduct / EXTRA_NODES_PER_PRODUCT - 1)).toBeLessThan(0.15);
  });

  test('targets that match nothing, and a combination with nf4, are refused before the model is loaded', async () => {
    const dir = tempDir('int8-validate');
    const cfg = tinyConfig(writeTinyData(dir), join(dir, 'run'));
    const err = await setupModel(cfg, [int8({ targets: ['qkv'] }), lora(LORA)], () => 1, quiet).catch((e: unknown) => e as Error);
    expect(String(err)).toContain('targets ["qkv"] match no linear weight of this model; its modules are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj');
    expect(() => new PluginDriver([int8(), nf4(), lora(LORA)])).toThrow("plugin 'tuneforge:int8' cannot be combined with 'tuneforge:nf4'");
  });
});

test('bad options are refused with a message naming the field', () => {
  const message = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('no error');
  };
  expect(message(() => int8({ blockSize: 0 }))).toBe('int8: invalid options\n  blockSize: Too small: expected number to be >=1');
  expect(message(() => int8({ blockSize: 2.5 }))).toStartWith('int8: invalid options\n  blockSize: ');
  expect(message(() => int8({ recomputeBackward: 'yes' } as never))).toStartWith('int8: invalid options\n  recomputeBackward: ');
  expect(message(() => int8({ targets: [] }))).toStartWith('int8: invalid options\n  targets: ');
  expect(message(() => int8({ targets: '(q_proj' }))).toStartWith('int8: invalid options\n  targets: not a valid regular expression "(q_proj"');
  expect(message(() => int8({ blocksize: 64 } as never))).toStartWith('int8: invalid options\n  blocksize: ');
  // Two problems at once, both named; and the JSON-config name reaches the same factory.
  expect(message(() => int8({ blockSize: -1, recomputeBackward: 1 } as never)).split('\n').map((l) => l.split(':')[0]!.trim())).toEqual(['int8', 'blockSize', 'recomputeBackward']);
  expect(message(() => BUILTIN_PLUGINS.int8!({ blockSize: 0 }))).toContain('blockSize');
});

test('plugin metadata', () => {
  const p = int8({ blockSize: 128 });
  expect(p.name).toBe(INT8);
  expect(p.enforce).toBe('post');
  expect(p.options).toEqual({ blockSize: 128, targets: 'all-linear', recomputeBackward: true });
  expect(int8().options).toEqual({ targets: 'all-linear', recomputeBackward: true }); // no blockSize: one scale per row
  expect(BUILTIN_PLUGINS.int8!({}).name).toBe(INT8);
});

describe('measured memory (child processes, VmRSS / VmHWM)', () => {
  const run = async <T>(...args: string[]): Promise<T> => {
    const child = Bun.spawn([process.execPath, join(REPO, 'plugins/int8/memory-probe.ts'), ...args], { stdout: 'pipe', stderr: 'pipe' });
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    if (code !== 0) throw new Error(`memory probe failed (${code}): ${err}`);
    return JSON.parse(out.trim().split('\n').at(-1)!) as T;
  };

  test('SmolLM2-135M\'s linear weights quantised one tensor at a time: at most 1.1 bytes per parameter of RSS', async () => {
    const r = await run<ProbeResult>('chunked');
    console.log(`chunked: ${r.params.toLocaleString('en-US')} parameters, stored ${(r.storedBytes / r.params).toFixed(4)} B/param, RSS +${((r.rssAfterBytes - r.rssBeforeBytes) / 2 ** 20).toFixed(1)} MiB = ${r.bytesPerParam.toFixed(3)} B/param`);
    expect(r.params).toBe(106_168_320);
    expect(r.bytesPerParam).toBeGreaterThan(0.95); // the codes are really there
    expect(r.bytesPerParam).toBeLessThanOrEqual(1.1);
  }, 120_000);

  test('quantising a loaded float32 model (randomWeights) and dropping the floats gives their memory back', async () => {
    const r = await run<ProbeResult>('drop');
    console.log(`drop: float32 model ${((r.rssWithFloatsBytes! - r.rssBeforeBytes) / 2 ** 20).toFixed(0)} MiB of RSS; after quantising and dropping: +${((r.rssAfterBytes - r.rssBeforeBytes) / 2 ** 20).toFixed(1)} MiB = ${r.bytesPerParam.toFixed(3)} B/param`);
    expect(r.rssWithFloatsBytes! - r.rssBeforeBytes).toBeGreaterThan(4 * r.params); // the floats were really there
    expect(r.bytesPerParam).toBeGreaterThan(0.95);
    expect(r.bytesPerParam).toBeLessThanOrEqual(1.1);
  }, 120_000);

  test('backward pass: the dequantised weights are not kept from the forward pass (re-dequantised) — measured', async () => {
    const re = await run<StepProbeResult>('step', 'recompute');
    const keep = await run<StepProbeResult>('step', 'keep');
    const w = re.weightBytes;
    console.log(`${re.layers} layers of ${w / 2 ** 20} MiB float32 weights, gradient step peak above the RSS before it: re-dequantised ${(re.stepPeakBytes / 2 ** 20).toFixed(1)} MiB, kept ${(keep.stepPeakBytes / 2 ** 20).toFixed(1)} MiB`);
    // Keeping them holds every layer's weight until its backward product: at least (layers - 1) weights.
    expect(keep.stepPeakBytes).toBeGreaterThan((re.layers - 1) * w);
    // Re-dequantised: one weight and its temporaries at a time (the float codes and the scaled weight: ~2 weights).
    expect(re.stepPeakBytes).toBeLessThan(4 * w);
  }, 120_000);
});
