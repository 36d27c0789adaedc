/**
 * bench:kernel — how close a forward+backward step built through the IR gets to this machine's practical peak.
 *
 * peak: one large float32 matmul run directly by onnxruntime (no IR involved).
 * step: a 4-layer MLP of width 2048 on a batch of 512, loss = mean(y^2), gradients for every weight, compiled by us.
 * mfu:  step GFLOP/s / peak GFLOP/s, where step FLOPs are the matmul FLOPs the step actually performs.
 *
 *   bun run bench:kernel
 */
import * as ort from 'onnxruntime-node';
import { compile, encodeModel, gradName, hostTensor, op, trace, valueAndGrad, type HostTensor } from '../core/index.ts';

const N = 2048, LAYERS = 4, BATCH = 512;

async function median(runs: number, fn: () => Promise<void>): Promise<number> {
  await fn(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

function randomTensor(shape: number[], scale: number): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (Math.random() * 2 - 1) * scale;
  return hostTensor('float32', shape, data);
}

/** A bare ONNX MatMul [M,K]@[K,N], built with our encoder but no IR, run directly through onnxruntime. */
async function peakGflops(): Promise<number> {
  const bytes = encodeModel({
    opset: 18,
    nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['c'], name: 'mm' }],
    initializers: [],
    inputs: [{ name: 'a', dtype: 'float32', dims: [N, N] }, { name: 'b', dtype: 'float32', dims: [N, N] }],
    outputs: [{ name: 'c', dtype: 'float32', dims: [N, N] }],
  });
  const session = await ort.InferenceSession.create(bytes);
  const a = new ort.Tensor('float32', randomTensor([N, N], 1).data as Float32Array, [N, N]);
  const b = new ort.Tensor('float32', randomTensor([N, N], 1).data as Float32Array, [N, N]);
  const seconds = await median(7, async () => { await session.run({ a, b }); });
  await session.release();
  return (2 * N * N * N) / seconds / 1e9;
}

async function stepGflops(): Promise<{ gflops: number; seconds: number; matmulFlops: number; totalFlops: number }> {
  const names = Array.from({ length: LAYERS }, (_, i) => `w${i}`);
  const g = trace((g) => {
    let h = g.input('x', 'float32', ['B', N]);
    for (const name of names) h = op.tanh(op.matmul(h, g.input(name, 'float32', [N, N])));
    return { loss: op.mean(op.square(h)) };
  });
  const exe = await compile(valueAndGrad(g, { of: 'loss', wrt: names }), { dims: { B: BATCH } });
  const feeds: Record<string, HostTensor> = { x: randomTensor([BATCH, N], 1) };
  for (const n of names) feeds[n] = randomTensor([N, N], 1 / Math.sqrt(N));
  let check = 0;
  const seconds = await median(5, async () => {
    const out = await exe.run(feeds);
    check += (out[gradName('w0')]!.data as Float32Array)[0]!;
  });
  await exe.release();
  if (!Number.isFinite(check)) throw new Error('non-finite gradients');
  const matmulFlops = exe.cost.byPrim.matmul ?? 0;
  return { gflops: matmulFlops / seconds / 1e9, seconds, matmulFlops, totalFlops: exe.cost.flops };
}

const peak = await peakGflops();
const step = await stepGflops();
const mfu = step.gflops / peak;
const rows: [string, string][] = [
  ['peak: ORT MatMul 2048x2048x2048 (GFLOP/s)', peak.toFixed(1)],
  [`step: MLP ${LAYERS}x${N}, batch ${BATCH}, fwd+bwd (GFLOP/s)`, step.gflops.toFixed(1)],
  ['step time (s)', step.seconds.toFixed(3)],
  ['step matmul GFLOP (from cost rules)', (step.matmulFlops / 1e9).toFixed(2)],
  ['step all GFLOP (from cost rules)', (step.totalFlops / 1e9).toFixed(2)],
  ['mfu (step / peak)', `${(100 * mfu).toFixed(1)}%`],
];
const w = Math.max(...rows.map((r) => r[0].length));
console.log('bench:kernel');
for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v.padStart(8)}`);
console.log(JSON.stringify({ peak_gflops: +peak.toFixed(2), step_gflops: +step.gflops.toFixed(2), mfu: +mfu.toFixed(4), step_seconds: +step.seconds.toFixed(4) }));
