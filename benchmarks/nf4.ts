/**
 * bench:nf4 — the figures of the QLoRA-NF4 plugin (plugins/nf4).
 *
 * 1. Round-trip error of N(0, 1) weights (2^20) per block size: relative RMS error of NF4, with double quantisation,
 *    and of the double quantisation alone; stored bytes per weight.
 * 2. Measured bytes per parameter of the 4-bit linear weights of SmolLM2-135M (106M weights), in a child process
 *    (VmRSS before/after; see plugins/nf4/memory-probe.ts): built tensor by tensor, and quantise-then-drop.
 * 3. One LoRA training step (r 8, all linear layers) on SmolLM2-135M's shape with random weights, B x T = 1 x 128,
 *    each variant in its own process: resident memory after set-up (float32 weights released), the step's peak
 *    (VmHWM, reset through /proc/self/clear_refs after set-up and compilation) and the step time, for
 *      float32 base | NF4, weight re-dequantised in the backward pass (default) | NF4, dequantised weight kept.
 *
 *   bun run benchmarks/nf4.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  baseWeightsOf, compile, hostTensor, paramSpecs, parseConfig, randomWeights, SMOLLM2_135M, valueAndGrad, type HostTensor, type Plugin, type PluginContext,
} from '../core/index.ts';
import { PluginDriver } from '../core/plugin/driver.ts';
import { buildLossGraph, DATA_INPUTS } from '../core/train/graphs.ts';
import { lora } from '../plugins/lora/index.ts';
import { nf4 } from '../plugins/nf4/index.ts';
import type { ProbeResult } from '../plugins/nf4/memory-probe.ts';
import { dequantizeNf4, nf4Bytes, quantizeNf4 } from '../plugins/nf4/quantize.ts';
import { runChild } from './lib/child.ts';

type Variant = 'float32' | 'nf4-recompute' | 'nf4-keep';
const VARIANTS: Variant[] = ['float32', 'nf4-recompute', 'nf4-keep'];
const [B, T] = [1, 128];

function status(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(m![1]) * 1024;
}

/** Child: set up one variant the way the trainer does, then run one gradient step and report memory and time. */
async function stepChild(variant: Variant): Promise<void> {
  const config = parseConfig(SMOLLM2_135M);
  const specs = paramSpecs(config);
  const plugins: Plugin[] = [lora({ r: 8, alpha: 16, targets: 'all-linear' })];
  if (variant !== 'float32') plugins.unshift(nf4({ recomputeBackward: variant === 'nf4-recompute' }));
  const driver = new PluginDriver(plugins);
  const ctx: PluginContext = { model: { config, specs }, run: { dir: '', seed: 1, totalSteps: 1 }, phase: 'train', log: () => {}, plugin: (n) => driver.api(n) };
  const forward = buildLossGraph(driver, ctx, config);
  const baseNames = new Set(specs.map((s) => s.name));
  const params = randomWeights(config, 1);
  const pending = forward.inputs.filter((i) => !baseNames.has(i.name) && !(DATA_INPUTS as readonly string[]).includes(i.name)).map((i) => ({ name: i.name, shape: i.v.shape as number[] }));
  for (const { value } of await driver.collect('params:init', ctx, pending, baseWeightsOf(params))) for (const [n, t] of value) params.set(n, t);
  // The weights were built in memory here, so the ones the graph no longer takes are dropped now (the trainer never
  // loads them: core/train/setup.ts).
  const inputs = new Set(forward.inputs.map((i) => i.name));
  for (const n of baseNames) if (!inputs.has(n)) params.delete(n);
  for (const [n, t] of params) if (n.endsWith('lora_B.weight')) params.set(n, hostTensor('float32', t.shape, new Float32Array(t.data.length).fill(1e-3)));
  const trainable = forward.inputs.map((i) => i.name).filter((n) => n.includes('.lora_'));
  const exe = await compile(valueAndGrad(forward, { of: 'loss', wrt: trainable }), { dims: { B, T } });
  const feeds: Record<string, HostTensor> = {
    input_ids: hostTensor('int64', [B, T], Array.from({ length: B * T }, (_, i) => 2 + ((i * 7919) % 49000))),
    labels: hostTensor('int64', [B, T], Array.from({ length: B * T }, (_, i) => 2 + ((i * 104729) % 49000))),
  };
  for (const i of exe.inputs) if (!(i.name in feeds)) feeds[i.name] = params.get(i.name)!;
  Bun.gc(true);
  const steady = status('VmRSS');
  writeFileSync('/proc/self/clear_refs', '5'); // reset VmHWM to the current RSS
  const times: number[] = [];
  let loss = 0;
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    loss = Number((await exe.run(feeds)).loss!.data[0]);
    times.push(performance.now() - t0);
  }
  const peak = status('VmHWM');
  const paramBytes = [...params.values()].reduce((s, t) => s + t.data.byteLength, 0);
  console.log(JSON.stringify({ variant, steadyBytes: steady, peakBytes: peak, paramBytes, stepMs: times.sort((a, b) => a - b)[1], loss }));
  await exe.release();
}


async function main(): Promise<void> {
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  const results: Record<string, unknown> = {};

  // 1. Error per block size.
  let s = 12345;
  const u = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s + 0.5) / 4294967296; };
  const w = Float32Array.from({ length: 1 << 20 }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
  const rms = (a: Float32Array, b?: Float32Array) => Math.sqrt(a.reduce((t, v, i) => t + (v - (b ? b[i]! : 0)) ** 2, 0) / a.length);
  console.log('round trip of N(0,1) weights (2^20): relative RMS error');
  console.log('block | NF4    | NF4 + double quant | double quant alone | bytes/weight');
  const errors: Record<number, number> = {};
  for (const block of [32, 64, 128, 256]) {
    const plain = dequantizeNf4(quantizeNf4(w, [1024, 1024], { blockSize: block, dqBlockSize: 0 }));
    const q = quantizeNf4(w, [1024, 1024], { blockSize: block });
    const dq = dequantizeNf4(q);
    errors[block] = rms(w, dq) / rms(w);
    console.log(`${String(block).padStart(5)} | ${(rms(w, plain) / rms(w)).toFixed(4)} | ${errors[block]!.toFixed(4).padStart(18)} | ${(rms(dq, plain) / rms(w)).toFixed(5).padStart(18)} | ${(nf4Bytes(q.layout) / w.length).toFixed(4)}`);
  }
  results.relRmsError = errors;

  // 2. Bytes per parameter, measured.
  console.log('\nSmolLM2-135M linear weights in NF4 (block 64, double quant 256), measured RSS in a child process');
  for (const mode of ['chunked', 'drop'] as const) {
    const r = await runChild<ProbeResult>(join(import.meta.dir, '../plugins/nf4/memory-probe.ts'), [mode], '', { quiet: true });
    console.log(`  ${mode.padEnd(8)} ${r.params.toLocaleString('en-US')} params: packed ${(r.packedBytes / r.params).toFixed(3)} B/param, RSS +${mib(r.rssAfterBytes - r.rssBeforeBytes)} MiB = ${r.bytesPerParam.toFixed(3)} B/param${r.rssWithFloatsBytes ? ` (float32 model: +${mib(r.rssWithFloatsBytes - r.rssBeforeBytes)} MiB)` : ''}`);
    results[`bytesPerParam_${mode}`] = r.bytesPerParam;
  }

  // 3. A LoRA step: float32 base vs NF4 (re-dequantised in the backward pass, or kept).
  console.log(`\nLoRA step (r 8, all linear) on SmolLM2-135M's shape, B x T = ${B} x ${T}, one process per variant`);
  console.log('variant        | params held MiB | RSS after set-up MiB | step peak MiB | peak - set-up MiB | step ms');
  for (const v of VARIANTS) {
    const r = await runChild<{ steadyBytes: number; peakBytes: number; paramBytes: number; stepMs: number; loss: number }>(import.meta.path, ['--step', v], '', { quiet: true });
    console.log(`${v.padEnd(14)} | ${mib(r.paramBytes).padStart(15)} | ${mib(r.steadyBytes).padStart(20)} | ${mib(r.peakBytes).padStart(13)} | ${mib(r.peakBytes - r.steadyBytes).padStart(17)} | ${r.stepMs.toFixed(0).padStart(7)}`);
    results[v] = { paramMiB: +mib(r.paramBytes), steadyMiB: +mib(r.steadyBytes), peakMiB: +mib(r.peakBytes), stepPeakMiB: +mib(r.peakBytes - r.steadyBytes), stepMs: Math.round(r.stepMs), loss: r.loss };
  }
  console.log(JSON.stringify(results));
}

if (process.argv[2] === '--step') await stepChild(process.argv[3] as Variant);
else await main();
