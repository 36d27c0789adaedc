/**
 * QLoRA-NF4: the quantiser (code table, round-trip error per block size, double quantisation), the in-graph
 * dequantisation primitives (finite differences, bit-identity with the TypeScript reference), LoRA gradients through
 * the 4-bit base, merge-and-export into the dequantised weights, the memory plan, and the measured bytes per weight.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { compile, hostTensor, nn, op, paramSpecs, readAll, trace, valueAndGrad, type HostTensor, type ModelConfig, type Plugin, type PluginContext, type Tensor } from '../../core/index.ts';
import { loadModel } from '../../core/models/load.ts';
import { buildCausalLM } from '../../core/models/llama.ts';
import { PluginDriver } from '../../core/plugin/driver.ts';
import { createPlanner } from '../../core/memory/index.ts';
import { setupModel, trainableSet, type RunModel } from '../../core/train/setup.ts';
import { train } from '../../core/train/trainer.ts';
import { gradTable, type GradCase } from '../../tests/gradcheck.ts';
import { quiet, REPO, removeTempDirs, silentProgress, storiesMissing, tempDir, tinyConfig, writeTinyData } from '../../tests/train/helpers.ts';
import { lora, type LoraApi } from '../lora/index.ts';
import { nf4, NF4, QLORA_DEFAULTS, type Nf4Api } from './index.ts';
import { nf4Dequantize, nf4Matmul, quantInputTypes, type Nf4Params } from './dequantize.ts';
import { dequantizeNf4, NF4_CODE, nearestCode, nf4Bytes, nf4Layout, quantizeNf4 } from './quantize.ts';
import type { ProbeResult, StepProbeResult } from './memory-probe.ts';

afterAll(removeTempDirs);

/** Deterministic N(0, 1) samples. */
function gaussian(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

function rmsDiff(a: ArrayLike<number>, b?: ArrayLike<number>): number {
  let t = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - (b ? b[i]! : 0);
    t += d * d;
  }
  return Math.sqrt(t / a.length);
}

describe('NF4 quantisation', () => {
  test('the code table is exactly the 16 bitsandbytes NF4 values, packed two per byte (high nibble first)', () => {
    const expected = [
      -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
      -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
      0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ];
    expect([...NF4_CODE]).toEqual(expected.map(Math.fround));
    // Every code value times an absmax quantises back to itself and dequantises exactly (block of 16 + padding).
    const absmax = 0.75; // exact in binary, so code * absmax is exact too
    const w = Float32Array.from([...expected.map((v) => v * absmax), 0.2]); // 17 values: the last block is padded
    const q = quantizeNf4(w, [17], { blockSize: 16, dqBlockSize: 0 });
    expect(q.codes.length).toBe(16); // 2 blocks of 16 -> 32 nibbles
    expect([...q.codes.subarray(0, 8)]).toEqual([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    expect(q.codes[8]! >> 4).toBe(15); // 0.2 is its block's absmax -> code 1.0
    expect(q.codes[8]! & 15).toBe(7); // padding -> the code of 0
    expect([...dequantizeNf4(q)]).toEqual([...w]);
  });

  test('nearest-code search agrees with brute force', () => {
    const xs = [...gaussian(20000, 5)].map((v) => Math.max(-1, Math.min(1, v / 2.5)));
    for (const x of [...xs, ...NF4_CODE, -1, 1, 0]) {
      let best = 0;
      for (let k = 1; k < 16; k++) if (Math.abs(x - NF4_CODE[k]!) <= Math.abs(x - NF4_CODE[best]!)) best = k;
      expect(nearestCode(x)).toBe(best);
    }
  });

  test('round trip of Gaussian weights: relative RMS error per block size, and double quantisation adds almost nothing', () => {
    const w = gaussian(1 << 20, 12345);
    const wRms = rmsDiff(w);
    const rows: { block: number; nf4: number; nf4dq: number; dqOnly: number; bytesPerWeight: number }[] = [];
    for (const block of [32, 64, 128, 256]) {
      const plain = dequantizeNf4(quantizeNf4(w, [1024, 1024], { blockSize: block, dqBlockSize: 0 }));
      const q = quantizeNf4(w, [1024, 1024], { blockSize: block });
      const dq = dequantizeNf4(q);
      rows.push({
        block,
        nf4: rmsDiff(w, plain) / wRms,
        nf4dq: rmsDiff(w, dq) / wRms,
        dqOnly: rmsDiff(dq, plain) / wRms,
        bytesPerWeight: nf4Bytes(q.layout) / w.length,
      });
    }
    console.log('block | rel. RMS error NF4 | with double quant | double quant alone | bytes/weight');
    for (const r of rows) console.log(`${String(r.block).padStart(5)} | ${r.nf4.toFixed(4).padStart(18)} | ${r.nf4dq.toFixed(4).padStart(17)} | ${r.dqOnly.toFixed(5).padStart(18)} | ${r.bytesPerWeight.toFixed(4)}`);
    // Block 64: the normalised values w / absmax have a standard deviation of about 1 / 2.4 (the expected maximum
    // of 64 |N(0,1)| draws is ~2.4), the NF4 levels near 0 are ~0.08-0.1 apart (a uniform error of step / sqrt(12),
    // i.e. ~0.026 x 2.4 ~ 0.065 in units of the weights' RMS), and the coarser outer levels add to that: ~0.09.
    const at = (b: number) => rows.find((r) => r.block === b)!;
    expect(at(64).nf4).toBeGreaterThan(0.08);
    expect(at(64).nf4).toBeLessThan(0.1);
    // Larger blocks have larger absmax values, so coarser steps: the error grows with the block size.
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.nf4).toBeGreaterThan(rows[i - 1]!.nf4);
    expect(at(32).nf4).toBeGreaterThan(0.07);
    expect(at(256).nf4).toBeLessThan(0.11);
    // Double quantisation of the scales: its own error is < 3% of the NF4 error and the total barely moves.
    for (const r of rows) {
      expect(r.dqOnly).toBeLessThan(0.03 * r.nf4);
      expect(Math.abs(r.nf4dq - r.nf4)).toBeLessThan(0.002 * r.nf4 + 1e-4);
    }
    // Storage: 4 bits + the scales. Block 64 with double quantisation: 0.5 + 1/64 + 4/(64*256) = 0.5159 B.
    expect(at(64).bytesPerWeight).toBeCloseTo(0.5 + 1 / 64 + 4 / (64 * 256), 4);
  });

  test('layout: padding of the last weight block and of the last double-quantisation block', () => {
    const l = nf4Layout(1000, 64, 256);
    expect(l).toMatchObject({ blocks: 16, codeBytes: 512, dqBlocks: 1, absmaxCodes: 256 });
    const w = gaussian(1000, 3);
    const q = quantizeNf4(w, [10, 100]);
    expect(rmsDiff(w, dequantizeNf4(q)) / rmsDiff(w)).toBeLessThan(0.1);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The primitives: derivatives against finite differences (float64), and the graph against the TypeScript reference.

const withDq: Nf4Params = { shape: [6, 8], blockSize: 8, dq: 4 }; // 6 blocks; double-quant blocks of 4 (2, padded)
const noDq: Nf4Params = { shape: [6, 8], blockSize: 8, dq: 0 };
const padded: Nf4Params = { shape: [5, 6], blockSize: 8, dq: 4 }; // 30 weights -> 4 blocks, the last one padded
const codes = (p: Nf4Params) => ({ shape: [nf4Layout(p.shape[0]! * p.shape[1]!, p.blockSize, p.dq).codeBytes], kind: 'int' as const, range: 256 });
const absq = (p: Nf4Params) => {
  const n = nf4Layout(p.shape[0]! * p.shape[1]!, p.blockSize, p.dq).absmaxCodes;
  return { shape: [n], kind: 'int' as const, values: Array.from({ length: n }, (_, i) => ((i * 53) % 255) - 127) };
};
const dqInputs = (p: Nf4Params) => [codes(p), absq(p), { shape: [nf4Layout(p.shape[0]! * p.shape[1]!, p.blockSize, p.dq).dqBlocks] }, { shape: [1] }];
const asQs = (p: Nf4Params, xs: readonly Tensor[]): Tensor[] => {
  const [c, ...rest] = xs;
  return p.dq > 0 ? [op.cast(c!, 'uint8'), op.cast(rest[0]!, 'int8'), rest[1]!, rest[2]!] : [op.cast(c!, 'uint8'), rest[0]!];
};

const PRIMITIVE_CASES: GradCase[] = [
  { name: 'nf4_matmul x W^T (x, scales, offset)', inputs: [{ shape: [2, 3, 8] }, ...dqInputs(withDq)], fn: (x, ...q) => nf4Matmul(x!, asQs(withDq, q), withDq, true) },
  { name: 'nf4_matmul x W (the backward orientation)', inputs: [{ shape: [4, 6] }, ...dqInputs(withDq)], fn: (x, ...q) => nf4Matmul(x!, asQs(withDq, q), withDq, false) },
  { name: 'nf4_matmul without double quantisation (x, absmax)', inputs: [{ shape: [3, 8] }, codes(noDq), { shape: [6], kind: 'positive' }], fn: (x, ...q) => nf4Matmul(x!, asQs(noDq, q), noDq, true) },
  { name: 'nf4_matmul with a padded last block', inputs: [{ shape: [2, 6] }, ...dqInputs(padded)], fn: (x, ...q) => nf4Matmul(x!, asQs(padded, q), padded, true) },
  { name: 'nf4_dequantize (scales, offset)', inputs: dqInputs(withDq), fn: (...q) => nf4Dequantize(asQs(withDq, q), withDq) },
  { name: 'nf4_dequantize without double quantisation (absmax)', inputs: [codes(noDq), { shape: [6], kind: 'positive' }], fn: (...q) => nf4Dequantize(asQs(noDq, q), noDq) },
  { name: 'nf4_dequantize padded', inputs: dqInputs(padded), fn: (...q) => nf4Dequantize(asQs(padded, q), padded) },
];

gradTable('NF4 primitives: derivatives vs finite differences', PRIMITIVE_CASES);

describe('NF4 primitives: the compiled graph', () => {
  test('dequantises bit-identically to the TypeScript reference, and nf4_matmul equals x W^T with that W', async () => {
    for (const [shape, blockSize, dq] of [[[48, 40], 64, 256], [[48, 40], 64, 0], [[30, 7], 32, 4]] as const) {
      const p: Nf4Params = { shape: [...shape], blockSize, dq };
      const w = gaussian(shape[0] * shape[1], 9);
      const q = quantizeNf4(w, shape, { blockSize, dqBlockSize: dq });
      const reference = dequantizeNf4(q);
      const types = quantInputTypes(p);
      const g = trace((g) => {
        const x = g.input('x', 'float32', ['B', 3, shape[1]]);
        const qs = types.map((t) => g.input(t.suffix, t.dtype, t.shape));
        const wf = g.input('w_float', 'float32', [...shape]);
        return { w: nf4Dequantize(qs, p), y: nf4Matmul(x, qs, p), y_ref: nn.linear(x, wf) };
      });
      const exe = await compile(g, { dims: { B: 2 } });
      const values = dq ? [q.codes, q.absmaxQ!, q.absmaxScale!, Float32Array.of(q.absmaxOffset!)] : [q.codes, q.absmax!];
      const feeds: Record<string, HostTensor> = {
        x: hostTensor('float32', [2, 3, shape[1]], gaussian(6 * shape[1], 4)),
        w_float: hostTensor('float32', [...shape], reference),
      };
      types.forEach((t, i) => (feeds[t.suffix] = hostTensor(t.dtype, t.shape as number[], values[i]!)));
      const out = await exe.run(feeds);
      await exe.release();
      expect([...(out.w!.data as Float32Array)]).toEqual([...reference]);
      const y = out.y!.data as Float32Array, yRef = out.y_ref!.data as Float32Array;
      for (let i = 0; i < y.length; i++) expect(Math.abs(y[i]! - yRef[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(yRef[i]!)));
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// With the trainer on stories260k.

const missing = storiesMissing('NF4 model tests');
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

describe.skipIf(missing)('QLoRA on stories260k', () => {
  test('set-up: the float32 linear weights are never loaded, the packed codes are fed in their place', async () => {
    const dir = tempDir('nf4-setup');
    const cfg = tinyConfig(writeTinyData(dir), join(dir, 'run'));
    const plugin = nf4();
    const m = await setupModel(cfg, [plugin, lora(LORA)], () => 1, quiet);
    const linear = m.ctx.model.specs.filter((s) => s.kind === 'linear');
    expect(linear.length).toBe(35);
    for (const s of linear) {
      expect(m.params.has(s.name)).toBe(false);
      expect(m.params.get(`${s.name}.nf4_codes`)?.dtype).toBe('uint8');
      expect(m.params.get(`${s.name}.nf4_codes`)?.data.byteLength).toBe((s.shape[0]! * s.shape[1]!) / 2);
      expect(m.params.get(`${s.name}.nf4_absmax_q`)?.dtype).toBe('int8');
    }
    expect(m.params.get('model.embed_tokens.weight')?.dtype).toBe('float32'); // not a target: kept as it was
    expect(m.feedNames).toEqual([]);
    expect((plugin.api as Nf4Api).quantized.size).toBe(35);
  });

  for (const recomputeBackward of [true, false]) {
    test(`LoRA gradients through the 4-bit weights equal those with the dequantised weights as float32 inputs (recomputeBackward: ${recomputeBackward})`, async () => {
      const dir = tempDir('nf4-grads');
      const cfg = tinyConfig(writeTinyData(dir), join(dir, 'run'));
      const q = nf4({ recomputeBackward });
      const m4 = await setupModel(cfg, [q, lora(LORA)], () => 1, quiet);
      const ref = await setupModel(cfg, [lora(LORA)], () => 1, quiet);
      const api = q.api as Nf4Api;
      for (const name of api.quantized.keys()) ref.params.set(name, api.dequantize(name)); // W = dequant(codes), float32
      fillB(m4);
      fillB(ref);
      const a = await lossAndGrads(m4), b = await lossAndGrads(ref);
      expect(a.grads.size).toBe(70);
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5 * Math.abs(b.loss));
      let worst = 0;
      for (const [name, g] of b.grads) {
        const mine = a.grads.get(name)!;
        const rel = rmsDiff(mine, g) / Math.max(rmsDiff(g), 1e-30);
        worst = Math.max(worst, rel);
        expect(rmsDiff(g)).toBeGreaterThan(0);
      }
      console.log(`max relative gradient difference over ${b.grads.size} LoRA tensors: ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-5);
      // The same model with the original float32 weights is measurably different: the test sees the quantisation.
      const orig = await setupModel(cfg, [lora(LORA)], () => 1, quiet);
      fillB(orig);
      const c = await lossAndGrads(orig);
      expect(Math.abs(c.loss - a.loss)).toBeGreaterThan(1e-4);
    });
  }

  test('merge and export: the merged float32 model reloads and gives the logits of the adapter on the 4-bit base', async () => {
    const dir = tempDir('nf4-export');
    const config = tinyConfig(writeTinyData(dir), join(dir, 'run'), { train: { steps: 4, lr: 2e-2 }, export: { merged: true, adapters: true } });
    const q = nf4(), l = lora(LORA);
    const result = await train({ config, plugins: [q, l], progress: silentProgress, log: quiet });
    const exportDir = join(config.output, 'export/model');
    // The exported file is a plain float32 model: every tensor F32, no NF4 inputs.
    const raw = await readAll(join(exportDir, 'model.safetensors'));
    expect([...raw.keys()].some((n) => n.includes('nf4'))).toBe(false);
    expect([...raw.values()].every((t) => t.dtype === 'float32')).toBe(true);
    const merged = await loadModel(exportDir);
    const original = await loadModel(config.model);
    const api = q.api as Nf4Api;
    const packed = new Map([...api.quantized.keys()].flatMap((w) => [...api.packed(w)]));
    const ids = hostTensor('int64', [2, 12], Array.from({ length: 24 }, (_, i) => (i * 29 + 3) % 512));
    const adapterOn4bit = await logits(merged.config, [q, l], (n) => packed.get(n) ?? result.trained.get(n) ?? original.weights.get(n), ids);
    const fromMerged = await logits(merged.config, [], (n) => merged.weights.get(n), ids);
    const diff = maxAbsDiff(adapterOn4bit, fromMerged);
    console.log(`merged export vs adapter on the 4-bit base: max |logit difference| ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);
    // What the common bug gives (LoRA merged into the original float32 weights instead of the dequantised ones) is
    // far outside that tolerance, so the check above would catch it.
    const wrong = (l.api as LoraApi).merge(original.weights, result.trained);
    const fromWrong = await logits(merged.config, [], (n) => wrong.get(n), ids);
    expect(maxAbsDiff(adapterOn4bit, fromWrong)).toBeGreaterThan(1e-3);
    // The adapter actually trained (B moved off zero), so the merge did something.
    expect([...result.trained].some(([n, t]) => n.endsWith('lora_B.weight') && (t.data as Float32Array).some((v) => v !== 0))).toBe(true);
  }, 120_000);

  test('training with activation checkpointing gives the same LoRA weights as without (the packed inputs reach every stage)', async () => {
    const dir = tempDir('nf4-ckpt');
    const data = writeTinyData(dir);
    const run = async (checkpointing: boolean) => {
      const config = tinyConfig(data, join(dir, `run-${checkpointing}`), { train: { steps: 2, lr: 1e-2 }, memory: { checkpointing } });
      return (await train({ config, plugins: [nf4(), lora(LORA)], progress: silentProgress, log: quiet })).trained;
    };
    const plain = await run(false), staged = await run(true);
    expect(staged.size).toBe(70);
    for (const [name, t] of plain) {
      const other = staged.get(name)!.data as Float32Array;
      expect(rmsDiff(other, t.data as Float32Array)).toBeLessThan(1e-5 * (rmsDiff(t.data as Float32Array) + 1e-12));
    }
  }, 120_000);

  test('memory:plan: the 4-bit storage replaces the 4 bytes per element the planner counts for the packed inputs', async () => {
    const dir = tempDir('nf4-plan');
    const cfg = tinyConfig(writeTinyData(dir), join(dir, 'run'));
    const plan4 = (await createPlanner(cfg, [nf4(), lora(LORA)])).plan();
    const planF = (await createPlanner(cfg, [lora(LORA)])).plan();
    const storage = plan4.items.find((i) => i.component.startsWith('NF4 storage'))!;
    const weights4 = plan4.items.find((i) => i.component.startsWith('weights'))!;
    const weightsF = planF.items.find((i) => i.component.startsWith('weights'))!;
    const { config } = await loadModel(cfg.model);
    const linear = paramSpecs(config).filter((s) => s.kind === 'linear');
    const n = linear.reduce((s, p) => s + p.shape[0]! * p.shape[1]!, 0);
    const packed = linear.reduce((s, p) => s + nf4Bytes(nf4Layout(p.shape[0]! * p.shape[1]!, 64, 256)), 0);
    console.log(`plan: ${n} quantised weights, float32 ${4 * n} B -> NF4 ${packed} B (${(packed / n).toFixed(3)} B each); item ${storage.bytes} B: ${storage.note}`);
    expect(storage.bytes).toBeLessThan(0);
    // What the run holds for the base weights: the float32 ones that stay, plus the packed NF4 arrays.
    expect(weights4.bytes + storage.bytes).toBe(weightsF.bytes - 4 * n + packed);
    expect(plan4.items.some((i) => i.component.startsWith('NF4 dequantisation temporaries'))).toBe(true);
  });
});

describe('measured memory (child processes, VmRSS / VmHWM)', () => {
  const run = async (...args: string[]): Promise<ProbeResult> => {
    const child = Bun.spawn([process.execPath, join(REPO, 'plugins/nf4/memory-probe.ts'), ...args], { stdout: 'pipe', stderr: 'pipe' });
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    if (code !== 0) throw new Error(`memory probe failed (${code}): ${err}`);
    return JSON.parse(out.trim().split('\n').at(-1)!) as ProbeResult;
  };

  test('built from random weights one tensor at a time: at most 0.55 bytes per parameter of RSS', async () => {
    const r = await run('chunked');
    console.log(`chunked: ${r.params.toLocaleString('en-US')} parameters, packed ${(r.packedBytes / r.params).toFixed(3)} B/param, RSS +${((r.rssAfterBytes - r.rssBeforeBytes) / 2 ** 20).toFixed(1)} MiB = ${r.bytesPerParam.toFixed(3)} B/param`);
    expect(r.params).toBe(106_168_320);
    expect(r.bytesPerParam).toBeGreaterThan(0.45); // the codes are really there
    expect(r.bytesPerParam).toBeLessThanOrEqual(0.55);
  }, 120_000);

  test('backward pass: the dequantised weights are not kept from the forward pass (re-dequantised) — measured', async () => {
    const re = (await run('step', 'recompute')) as unknown as StepProbeResult;
    const keep = (await run('step', 'keep')) as unknown as StepProbeResult;
    const w = re.weightBytes;
    console.log(`${re.layers} layers of ${w / 2 ** 20} MiB float32 weights, gradient step peak above the RSS before it: re-dequantised ${(re.stepPeakBytes / 2 ** 20).toFixed(1)} MiB, kept ${(keep.stepPeakBytes / 2 ** 20).toFixed(1)} MiB`);
    // Keeping them holds every layer's weight until its backward product: at least (layers - 1) weights.
    expect(keep.stepPeakBytes).toBeGreaterThan((re.layers - 1) * w);
    // Re-dequantised: one weight and its temporaries at a time (indices, code pairs, scaled blocks: ~3-4 weights).
    // Emitting the dequantisation after x's reshape (onnxruntime then schedules every weight at the start of the
    // step) or letting common-subexpression elimination merge the forward and backward dequantisations both measure
    // ~10.6 weights here, and fail.
    expect(re.stepPeakBytes).toBeLessThan(5 * w);
    expect(re.stepPeakBytes).toBeLessThan(keep.stepPeakBytes / 2);
  }, 120_000);

  test('quantising a loaded float32 model and dropping the floats gives their memory back', async () => {
    const r = await run('drop');
    console.log(`drop: float32 model ${((r.rssWithFloatsBytes! - r.rssBeforeBytes) / 2 ** 20).toFixed(0)} MiB of RSS; after quantising and dropping: +${((r.rssAfterBytes - r.rssBeforeBytes) / 2 ** 20).toFixed(1)} MiB = ${r.bytesPerParam.toFixed(3)} B/param`);
    expect(r.rssWithFloatsBytes! - r.rssBeforeBytes).toBeGreaterThan(4 * r.params); // the floats were really there
    expect(r.bytesPerParam).toBeLessThanOrEqual(0.6);
  }, 120_000);
});

test('plugin metadata', () => {
  const p = nf4({ blockSize: 128 });
  expect(p.name).toBe(NF4);
  expect(p.enforce).toBe('post');
  expect(p.options).toMatchObject({ blockSize: 128, doubleQuant: true, doubleQuantBlockSize: 256, targets: 'all-linear' });
  expect(() => nf4({ blockSize: 63 })).toThrow();
  expect(() => nf4({ unknown: 1 } as never)).toThrow();
  // The paper's recipe: LoRA r 64, alpha 16 on all linear layers; lr 2e-4, max grad norm 0.3.
  expect(lora(QLORA_DEFAULTS.lora).options).toMatchObject({ r: 64, alpha: 16, targets: 'all-linear' });
  const cfg = tinyConfig('data.jsonl', 'out', { train: { steps: 1, batchSize: 1, ...QLORA_DEFAULTS.train } });
  expect(cfg.train).toMatchObject({ lr: 2e-4, maxGradNorm: 0.3 });
});
