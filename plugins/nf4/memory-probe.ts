/**
 * Measures what NF4 weights really occupy: run as its own process (the test and `benchmarks/nf4.ts` spawn it),
 * it reads VmRSS from /proc/self/status before and after quantising every linear weight of a model shape, and
 * prints one JSON line.
 *
 *   bun plugins/nf4/memory-probe.ts [chunked|drop] [blockSize]
 *   bun plugins/nf4/memory-probe.ts step [recompute|keep]
 *
 * - `chunked`: each weight is drawn N(0, 0.02) into one reused scratch buffer and quantised, so the float32 model
 *   never exists in full (as in the trainer, which reads each weight from the checkpoint, quantises it and drops
 *   it); the RSS growth is the packed storage alone (the smaller of two rounds).
 * - `drop`: a model built in memory: the whole float32 model is materialised (`randomWeights`), each linear weight
 *   is quantised and its float32 array dropped; RSS after a full GC shows whether the floats' memory really went back.
 * - `step`: the backward pass. A stack of LAYERS 4-bit linear layers (WIDTH x WIDTH, tanh between them) and the
 *   gradient with respect to the input, run once: the peak RSS of the run above the RSS before it (VmHWM reset
 *   through /proc/self/clear_refs). `recompute` uses `nf4_matmul` (the weight is dequantised again in the backward
 *   pass); `keep` dequantises once with `nf4_dequantize` and uses the ordinary linear layer, so autodiff keeps every
 *   dequantised weight alive from the forward to the backward pass.
 */
import { writeFileSync } from 'node:fs';
import { fillNormal, procStatusBytes, settledRss } from '../../core/memory/index.ts';
import { compile, hostTensor, nn, op, paramSpecs, parseConfig, randomWeights, SMOLLM2_135M, trace, valueAndGrad, type HostTensor, type Tensor } from '../../core/index.ts';
import { nf4Dequantize, nf4Matmul, quantInputTypes, type Nf4Params } from './dequantize.ts';
import { nf4Bytes, quantizeNf4, type Nf4Tensor } from './quantize.ts';

export interface ProbeResult {
  mode: 'chunked' | 'drop';
  blockSize: number;
  /** Quantised parameters (every linear weight). */
  params: number;
  /** Bytes of the packed arrays by their layout. */
  packedBytes: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** RSS growth per quantised parameter. */
  bytesPerParam: number;
  /** In `drop` mode: RSS with the whole float32 model loaded, before quantising. */
  rssWithFloatsBytes?: number;
}



export async function probe(mode: 'chunked' | 'drop', blockSize = 64): Promise<ProbeResult> {
  const config = parseConfig(SMOLLM2_135M);
  const linear = paramSpecs(config).filter((s) => s.kind === 'linear');
  // Working space exists before the baseline and lives past the final reading: the chunked mode's scratch buffer,
  // and the JIT code of the generator and quantiser, compiled up to the top tier on a warm-up weight first (code
  // and freed compiler memory are not storage, but they would count as growth).
  const scratch = mode === 'chunked' ? new Float32Array(Math.max(...linear.map((s) => s.shape[0]! * s.shape[1]!))) : undefined;
  const warm = new Float32Array(1 << 20);
  const warmed = Array.from({ length: 4 }, () => quantizeNf4(fillNormal(warm), [1024, 1024], { blockSize })); // kept: their memory is not reused below
  let kept: Nf4Tensor[] = [];
  let rssWithFloatsBytes: number | undefined;
  let rssBeforeBytes = await settledRss(), rssAfterBytes: number;
  if (scratch) {
    // Two rounds, the second on top of the first (which stays alive, so no freed memory is reused): the RSS of a
    // process under load moves by a few MiB for reasons of its own (threads, allocator caches), which only ever adds
    // to a growth, so the smaller of the two is the better measure of what the arrays hold.
    const round = async () => {
      const q = linear.map((s) => quantizeNf4(fillNormal(scratch.subarray(0, s.shape[0]! * s.shape[1]!)), s.shape, { blockSize }));
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
      kept.push(quantizeNf4(weights.get(s.name)!.data as Float32Array, s.shape, { blockSize }));
      weights.delete(s.name);
    }
    weights.clear(); // the embeddings and norms are not part of this measure
    rssAfterBytes = await settledRss();
  }
  if (kept.length !== linear.length || warmed.length !== 4) throw new Error('unreachable'); // keeps both alive until here
  const params = kept.reduce((n, q) => n + q.layout.numel, 0);
  const packedBytes = kept.reduce((n, q) => n + nf4Bytes(q.layout), 0);
  return { mode, blockSize, params, packedBytes, rssBeforeBytes, rssAfterBytes, bytesPerParam: (rssAfterBytes - rssBeforeBytes) / params, rssWithFloatsBytes };
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
  const p: Nf4Params = { shape: [STEP_WIDTH, STEP_WIDTH], blockSize: 64, dq: 256 };
  const types = quantInputTypes(p);
  const graph = trace((g) => {
    let h: Tensor = g.input('x', 'float32', [1, 16, STEP_WIDTH]);
    for (let l = 0; l < STEP_LAYERS; l++) {
      const qs = types.map((t) => g.input(`w${l}.${t.suffix}`, t.dtype, t.shape));
      h = op.tanh(variant === 'recompute' ? nf4Matmul(h, qs, p) : nn.linear(h, nf4Dequantize(qs, p)));
    }
    return { loss: op.sum(op.mul(h, h)) };
  });
  const exe = await compile(valueAndGrad(graph, { of: 'loss', wrt: ['x'] }));
  let state = 7;
  const byte = () => ((state = (state * 1103515245 + 12345) >>> 0) >>> 24);
  const feeds: Record<string, HostTensor> = { x: hostTensor('float32', [1, 16, STEP_WIDTH], Float32Array.from({ length: 16 * STEP_WIDTH }, (_, i) => Math.sin(i))) };
  for (let l = 0; l < STEP_LAYERS; l++) {
    for (const t of types) {
      const n = (t.shape as number[]).reduce((a, b) => a * b, 1);
      const data = t.dtype === 'uint8' ? Uint8Array.from({ length: n }, byte) : t.dtype === 'int8' ? Int8Array.from({ length: n }, () => byte() - 128) : t.suffix.endsWith('offset') ? Float32Array.of(0.02) : new Float32Array(n).fill(1e-4);
      feeds[`w${l}.${t.suffix}`] = hostTensor(t.dtype, t.shape as number[], data);
    }
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
  console.log(JSON.stringify(await stepProbe((process.argv[3] ?? 'recompute') as 'recompute' | 'keep')));
} else if (import.meta.main) {
  const mode = (process.argv[2] ?? 'chunked') as 'chunked' | 'drop';
  if (mode !== 'chunked' && mode !== 'drop') throw new Error(`mode must be chunked or drop, got ${mode}`);
  console.log(JSON.stringify(await probe(mode, Number(process.argv[3] ?? 64))));
}
