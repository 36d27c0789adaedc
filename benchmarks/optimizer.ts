/**
 * bench:optimizer — one optimizer update (global-norm clipping included) of SmolLM2-135M full fine-tuning state,
 * on the host (clip.ts + adamw.ts / sgd.ts, JavaScript loops) against the device optimizer (core/optim/device.ts:
 * update graphs on onnxruntime-node's CPU provider), timed in the same process on the same random tensors.
 *
 *   bun run bench:optimizer [--reps 3] [--piece-elements 1048576] [--algorithms adamw,sgd]
 *
 * The device updates each tensor in pieces of at most --piece-elements, writing over the arrays (device.ts), on
 * onnxruntime's default intra-op thread pool and on one thread. Each rep restores the gradients
 * first (host clipping scales them in place), then times the device updates and the host's, interleaved so that load from other processes falls on both alike; medians are reported. The first step of
 * each is not timed (the device compiles its graphs, the host allocates its state). After the first step the parameters and moments of the two are compared
 * (max |device - host| / max |host| per tensor, the worst over tensors): float32 rounding.
 */
import { SMOLLM2_135M, parseConfig, paramSpecs } from '../core/index.ts';
import { AdamW, DeviceOptimizer, SGD, clipGradNorm, type Optimizer } from '../core/optim/index.ts';
import { seededRandom } from '../core/generate/sampling.ts';
import { ortNodeRunner } from '../runners/ort-node.ts';
import { benchOptions } from './lib/options.ts';

const opts = benchOptions(['reps', 'piece-elements', 'algorithms']);
const reps = opts.number('reps') ?? 3;
const pieceElements = opts.number('piece-elements') ?? 2 ** 20;
const algorithms = (opts.string('algorithms') ?? 'adamw,sgd').split(',');
const MAX_NORM = 1;
const LR = 1e-4;

const specs = paramSpecs(parseConfig(SMOLLM2_135M));
const shapes = new Map(specs.map((s) => [s.name, s.shape]));
const count = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);

/** Uniform values in [-scale, scale): a cheap generator, the values only need to be non-degenerate. */
function randomArray(random: () => number, n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * (2 * random() - 1);
  return out;
}
const random = seededRandom(0);
const initial = new Map(specs.map((s) => [s.name, randomArray(random, s.shape.reduce((a, b) => a * b, 1), 0.05)]));
const pristine = new Map([...initial].map(([n, p]) => [n, randomArray(random, p.length, 1e-3)])); // norm ≈ 6.7: clipped

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const seconds = async (f: () => unknown) => { const t = performance.now(); await f(); return (performance.now() - t) / 1000; };

function worstError(a: ReadonlyMap<string, Float32Array>, b: ReadonlyMap<string, Float32Array>): number {
  let worst = 0;
  for (const [n, e] of b) {
    const x = a.get(n)!;
    let peak = 0, diff = 0;
    for (let i = 0; i < e.length; i++) { peak = Math.max(peak, Math.abs(e[i]!)); diff = Math.max(diff, Math.abs(x[i]! - e[i]!)); }
    worst = Math.max(worst, peak === 0 ? diff : diff / peak);
  }
  return worst;
}

function stateArrays(o: Optimizer): Map<string, Float32Array> {
  return new Map(Object.entries(o.stateDict({ copy: false })).filter((e): e is [string, Float32Array] => e[1] instanceof Float32Array));
}

const results: Record<string, Record<string, number>> = {};
const rows: string[][] = [];
/** The default runner (onnxruntime's intra-op pool over every core) and one thread: on a loaded machine its spinning pool loses. */
const RUNNERS = [{ label: 'device', runner: undefined }, { label: 'device_1_thread', runner: ortNodeRunner({ intraOpNumThreads: 1, memArena: true }) }] as const;
for (const algorithm of algorithms) {
  if (algorithm !== 'adamw' && algorithm !== 'sgd') throw new Error(`--algorithms: adamw or sgd, got ${algorithm}`);
  const options = algorithm === 'adamw' ? { weightDecay: 0.1 } : { momentum: 0.9, weightDecay: 0.1 };
  const host: Optimizer = algorithm === 'adamw' ? new AdamW(options, { shapes }) : new SGD(options, { shapes });
  const hostParams = new Map([...initial].map(([n, p]) => [n, p.slice()]));
  const grads = new Map([...pristine].map(([n, g]) => [n, g.slice()]));
  const restore = () => { for (const [n, g] of pristine) grads.get(n)!.set(g); };
  const hostStep = async () => { clipGradNorm(grads.values(), MAX_NORM); await host.step(hostParams, grads, LR); };
  const devices = RUNNERS.map(({ label, runner }) => {
    const device = { pieceElements, ...(runner ? { runner } : {}) };
    const opt = algorithm === 'adamw' ? DeviceOptimizer.adamw(options, { shapes }, device) : DeviceOptimizer.sgd(options, { shapes }, device);
    const params = new Map([...initial].map(([n, p]) => [n, p.slice()]));
    // The device never changes the gradients (clippedGrads off), so it runs before the host's in-place clipping.
    return { label, opt, params, step: () => opt.clipAndStep(params, grads, LR, MAX_NORM), times: [] as number[], first: 0 };
  });
  for (const d of devices) d.first = await seconds(d.step);
  await hostStep(); // allocates the host's state: not timed either
  const error = Math.max(...devices.map((d) => Math.max(worstError(d.params, hostParams), worstError(stateArrays(d.opt), stateArrays(host)))));
  const hostTimes: number[] = [];
  for (let r = 0; r < reps; r++) {
    restore();
    for (const d of devices) d.times.push(await seconds(d.step));
    hostTimes.push(await seconds(hostStep));
  }
  const h = median(hostTimes);
  const figures: Record<string, number> = { host_s: +h.toFixed(3) };
  for (const d of devices) {
    await d.opt.release();
    const t = median(d.times);
    Object.assign(figures, { [`${d.label}_s`]: +t.toFixed(3), [`${d.label}_over_host`]: +(t / h).toFixed(3), [`${d.label}_first_s`]: +d.first.toFixed(3) });
  }
  figures.max_rel_error = +error.toExponential(2);
  results[algorithm] = figures;
  const [d, d1] = devices.map((x) => median(x.times)) as [number, number];
  rows.push([algorithm === 'adamw' ? 'AdamW (wd 0.1) + clip' : 'SGD momentum 0.9 (wd 0.1) + clip', h.toFixed(3), d.toFixed(3), `${(d / h).toFixed(2)}x`,
    d1.toFixed(3), `${(d1 / h).toFixed(2)}x`, devices[0]!.first.toFixed(2), error.toExponential(1)]);
  console.error(`done ${algorithm}: host ${h.toFixed(3)} s, device ${d.toFixed(3)} s, device 1 thread ${d1.toFixed(3)} s`);
}

const head = ['update of SmolLM2-135M full fine-tuning', 'host s', 'device s', 'device/host', '1 thread s', '1 thread/host', 'first device s', 'max rel err'];
const w = head.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
console.log(`bench:optimizer (${(count / 1e6).toFixed(1)}M parameters in ${specs.length} tensors, pieces of ${pieceElements} elements, medians of ${reps} reps; device = onnxruntime-node CPU)`);
for (const r of [head, ...rows]) console.log(`  ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')}`);
console.log(JSON.stringify({ parameters: count, tensors: specs.length, piece_elements: pieceElements, reps, ...results }));
