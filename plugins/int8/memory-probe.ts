/**
 * Measures what int8 weights really occupy: run as its own process (int8.test.ts spawns it), it reads VmRSS from
 * /proc/self/status before and after quantising every linear weight of the SmolLM2-135M shape, and prints one JSON
 * line.
 *
 *   bun plugins/int8/memory-probe.ts [chunked|drop] [blockSize]    # blockSize 0 or absent: one scale per row
 *   bun plugins/int8/memory-probe.ts step [recompute|keep]
 *
 * - `chunked`: each weight is drawn N(0, 0.02) into one reused scratch buffer and quantised, so the float32 model
 *   never exists in full (as in the trainer, which reads each weight from the checkpoint, quantises it and drops
 *   it); the RSS growth is the stored codes and scales alone (the smaller of two rounds).
 * - `drop`: the whole float32 model is materialised (`randomWeights`), each linear weight is quantised and its
 *   float32 array dropped; RSS after a full GC shows whether the floats' memory really went back.
 * - `step`: the backward pass. A stack of STEP_LAYERS int8 linear layers (STEP_WIDTH x STEP_WIDTH, tanh between
 *   them) and the gradient with respect to the input, run once: the peak RSS of the run above the RSS before it
 *   (VmHWM reset through /proc/self/clear_refs). `recompute` uses `int8_matmul` (the weight is dequantised again in
 *   the backward pass); `keep` dequantises once with `int8_dequantize` and uses the ordinary linear layer, so
 *   autodiff keeps every dequantised weight alive from the forward to the backward pass.
 */
import { writeFileSync } from 'node:fs';
import { fillNormal, procStatusBytes, settledRss } from '../../core/memory/index.ts';
import { compile, hostTensor, nn, op, paramSpecs, parseConfig, randomWeights, SMOLLM2_135M, trace, valueAndGrad, type HostTensor, type Tensor } from '../../core/index.ts';
import { int8Dequantize, int8InputTypes, int8Matmul, type Int8Params } from './dequantize.ts';
import { int8Bytes, quantizeInt8, type Int8Tensor } from './quantize.ts';

export interface ProbeResult {
  mode: 'chunked' | 'drop';
  /** 0: one scale per row. */
  blockSize: number;
  /** Quantised parameters (every linear weight). */
  params: number;
  /** Bytes of the codes and scales by their layout. */
  storedBytes: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** RSS growth per quantised parameter. */
  bytesPerParam: number;
  /** In `drop` mode: RSS with the whole float32 model loaded, before quantising. */
  rssWithFloatsBytes?: number;
}




export async function probe(mode: 'chunked' | 'drop', blockSize = 0): Promise<ProbeResult> {
  const config = parseConfig(SMOLLM2_135M);
  const linear = paramSpecs(config).filter((s) => s.kind === 'linear');
  const opts = blockSize > 0 ? { blockSize } : {};
  // Working space exists before the baseline and lives past the final reading: the chunked mode's scratch buffer,
  // and the JIT code of the generator and quantiser, compiled up to the top tier on warm-up weights first (code and
  // freed compiler memory are not storage, but they would count as growth).
  const scratch = mode === 'chunked' ? new Float32Array(Math.max(...linear.map((s) => s.shape[0]! * s.shape[1]!))) : undefined;
  const warm = new Float32Array(1 << 20);
  const warmed = Array.from({ length: 4 }, () => quantizeInt8(fillNormal(warm), [1024, 1024], opts)); // kept: their memory is not reused below
  let kept: Int8Tensor[] = [];
  let rssWithFloatsBytes: number | undefined;
  let rssBeforeBytes = await settledRss(), rssAfterBytes: number;
  if (scratch) {
    // Two rounds, the second on top of the first (which stays alive, so no freed memory is reused): the RSS of a
    // process under load moves by a few MiB for reasons of its own (threads, allocator caches), which only ever adds
    // to a growth, so the smaller of the two is the better measure of what the arrays hold.
    const round = async () => {
      const q = linear.map((s) => quantizeInt8(fillNormal(scratch.subarray(0, s.shape[0]! * s.shape[1]!)), s.shape, opts));
      return { q, rss: await settledRss() };
    };
    const first = await round();
    const second = await round();
    kept = first.q;
    rssAfterBytes = first.rss;
    if (second.rss - first.rss < first.rss - rssBeforeBytes) [rssBeforeBytes, rssAfterBytes, kept] = [first.rss, second.rss, second.q];
    if (first.q.length !== second.q.length) throw new Error('unreachable'); // keeps both rounds alive until here
  } else {
    const weights: Map<string, HostTensor> = randomWeights(config, 1);
    rssWithFloatsBytes = await settledRss();
    for (const s of linear) {
      kept.push(quantizeInt8(weights.get(s.name)!.data as Float32Array, s.shape, opts));
      weights.delete(s.name);
    }
    weights.clear(); // the embeddings and norms are not part of this measure
    rssAfterBytes = await settledRss();
  }
  if (kept.length !== linear.length || warmed.length !== 4) throw new Error('unreachable'); // keeps both alive until here
  const params = kept.reduce((n, q) => n + q.layout.numel, 0);
  const storedBytes = kept.reduce((n, q) => n + int8Bytes(q.layout), 0);
  return { mode, blockSize, params, storedBytes, rssBeforeBytes, rssAfterBytes, bytesPerParam: (rssAfterBytes - rssBeforeBytes) / params, rssWithFloatsBytes };
}

export interface StepProbeResult {
  variant: 'recompute' | 'keep';
  layers: number;
  /** Bytes of one dequantised float32 weight. */
  weightBytes: number;
  /** Peak RSS during the gradient run minus the RSS before it. */
  stepPeakBytes: number;
}

export const STEP_LAYERS = 8, STEP_WIDTH = 2048;

export async function stepProbe(variant: 'recompute' | 'keep'): Promise<StepProbeResult> {
  const p: Int8Params = { shape: [STEP_WIDTH, STEP_WIDTH], blockSize: STEP_WIDTH };
  const types = int8InputTypes(p);
  const graph = trace((g) => {
    let h: Tensor = g.input('x', 'float32', [1, 16, STEP_WIDTH]); // [1, 16, width]
    for (let l = 0; l < STEP_LAYERS; l++) {
      const qs = types.map((t) => g.input(`w${l}.${t.suffix}`, t.dtype, t.shape));
      h = op.tanh(variant === 'recompute' ? int8Matmul(h, qs, p) : nn.linear(h, int8Dequantize(qs, p)));
    }
    return { loss: op.sum(op.mul(h, h)) };
  });
  const exe = await compile(valueAndGrad(graph, { of: 'loss', wrt: ['x'] }));
  let state = 7;
  const byte = () => ((state = (state * 1103515245 + 12345) >>> 0) >>> 24);
  const feeds: Record<string, HostTensor> = { x: hostTensor('float32', [1, 16, STEP_WIDTH], Float32Array.from({ length: 16 * STEP_WIDTH }, (_, i) => Math.sin(i))) };
  for (let l = 0; l < STEP_LAYERS; l++) {
    const [codes, scales] = types as [(typeof types)[0], (typeof types)[0]];
    const n = Number(codes.shape[0]);
    feeds[`w${l}.${codes.suffix}`] = hostTensor('int8', [n], Int8Array.from({ length: n }, () => (byte() % 255) - 127));
    feeds[`w${l}.${scales.suffix}`] = hostTensor('float32', [Number(scales.shape[0])], new Float32Array(Number(scales.shape[0])).fill(1e-4));
  }
  await exe.run(feeds); // warm-up: first-run allocations are not the step's
  Bun.gc(true);
  const before = procStatusBytes('VmRSS');
  writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
  await exe.run(feeds);
  const stepPeakBytes = procStatusBytes('VmHWM') - before;
  await exe.release();
  return { variant, layers: STEP_LAYERS, weightBytes: 4 * STEP_WIDTH * STEP_WIDTH, stepPeakBytes };
}

if (import.meta.main && process.argv[2] === 'step') {
  const variant = process.argv[3] ?? 'recompute';
  if (variant !== 'recompute' && variant !== 'keep') throw new Error(`step variant must be recompute or keep, got ${variant}`);
  console.log(JSON.stringify(await stepProbe(variant)));
} else if (import.meta.main) {
  const mode = process.argv[2] ?? 'chunked';
  if (mode !== 'chunked' && mode !== 'drop') throw new Error(`mode must be chunked, drop or step, got ${mode}`);
  console.log(JSON.stringify(await probe(mode, Number(process.argv[3] ?? 0))));
}
