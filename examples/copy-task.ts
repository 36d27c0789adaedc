/**
 * A one-block causal transformer (RMSNorm, RoPE, grouped-query attention, SwiGLU MLP) learning to copy a random
 * sequence: [a1..aN, SEP, a1..aN], loss on the copy only. Built, differentiated and trained through the public API.
 *
 *   bun run examples/copy-task.ts [steps]
 */
import { AdamW, compile, gradName, hostTensor, nn, op, trace, valueAndGrad, type HostTensor, type Tensor } from '../core/index.ts';
import { normal, rng } from '../tests/gradcheck.ts';

export const COPY = { vocab: 10, len: 6, hidden: 32, heads: 4, kvHeads: 2, ffn: 64, batch: 32 } as const;
const SEP = COPY.vocab - 1;
const T = 2 * COPY.len + 1;

/** Parameter shapes, by name. */
export function copyParamShapes(): Record<string, number[]> {
  const { vocab, hidden, heads, kvHeads, ffn } = COPY;
  const hd = hidden / heads;
  return {
    embed: [vocab, hidden], norm1: [hidden], wq: [heads * hd, hidden], wk: [kvHeads * hd, hidden], wv: [kvHeads * hd, hidden],
    wo: [hidden, heads * hd], norm2: [hidden], gate: [ffn, hidden], up: [ffn, hidden], down: [hidden, ffn], normF: [hidden], head: [vocab, hidden],
  };
}

export function buildCopyGraph() {
  const { hidden, heads, kvHeads } = COPY;
  const hd = hidden / heads;
  return trace((g) => {
    const p: Record<string, Tensor> = {};
    for (const [name, shape] of Object.entries(copyParamShapes())) p[name] = g.input(name, 'float32', shape);
    const ids = g.input('ids', 'int64', ['B', T]);
    const labels = g.input('labels', 'int64', ['B', T]);
    const x = nn.embedding(p.embed!, ids); // [B, T, C]
    const h = nn.rmsNorm(x, p.norm1!, 1e-5);
    const split = (y: Tensor, n: number) => op.transpose(op.reshape(y, ['B', T, n, hd]), [0, 2, 1, 3]); // [B, n, T, hd]
    const { cos, sin } = nn.ropeTables(op.iota(x, [T], 0), nn.ropeInvFreq(hd, 10000));
    const q = nn.applyRope(split(nn.linear(h, p.wq!), heads), cos, sin);
    const k = nn.applyRope(split(nn.linear(h, p.wk!), kvHeads), cos, sin);
    const v = split(nn.linear(h, p.wv!), kvHeads);
    const attn = nn.attention(q, k, v, nn.causalMask(x, T, T)); // [B, H, T, hd]
    const merged = op.reshape(op.transpose(attn, [0, 2, 1, 3]), ['B', T, hidden]);
    const x2 = op.add(x, nn.linear(merged, p.wo!));
    const h2 = nn.rmsNorm(x2, p.norm2!, 1e-5);
    const mlp = nn.linear(op.mul(nn.silu(nn.linear(h2, p.gate!)), nn.linear(h2, p.up!)), p.down!);
    const logits = nn.linear(nn.rmsNorm(op.add(x2, mlp), p.normF!, 1e-5), p.head!); // [B, T, V]
    return { loss: nn.crossEntropy(logits, labels) };
  });
}

export function initCopyParams(seed: number): Record<string, HostTensor> {
  const rand = rng(seed);
  const params: Record<string, HostTensor> = {};
  for (const [name, shape] of Object.entries(copyParamShapes())) {
    const n = shape.reduce((a, b) => a * b, 1);
    const std = shape.length === 1 ? 0 : 1 / Math.sqrt(shape[1]!);
    params[name] = hostTensor('float32', shape, Array.from({ length: n }, () => (shape.length === 1 ? 1 : std * normal(rand))));
  }
  return params;
}

/** A batch: ids [B, T] and labels [B, T] (labels are the next token, -100 outside the copy). */
export function copyBatch(rand: () => number): { ids: HostTensor; labels: HostTensor } {
  const B = COPY.batch;
  const ids = new BigInt64Array(B * T), labels = new BigInt64Array(B * T).fill(-100n);
  for (let b = 0; b < B; b++) {
    const seq = Array.from({ length: COPY.len }, () => Math.floor(rand() * (COPY.vocab - 1)));
    const row = [...seq, SEP, ...seq];
    row.forEach((tok, t) => { ids[b * T + t] = BigInt(tok); });
    for (let t = COPY.len; t < T - 1; t++) labels[b * T + t] = BigInt(row[t + 1]!);
  }
  return { ids: hostTensor('int64', [B, T], ids), labels: hostTensor('int64', [B, T], labels) };
}

/** Trains for `steps` and returns the loss of each step. */
export async function trainCopyTask(steps: number, seed = 0, onStep?: (step: number, loss: number) => void): Promise<number[]> {
  const names = Object.keys(copyParamShapes());
  const exe = await compile(valueAndGrad(buildCopyGraph(), { of: 'loss', wrt: names }), { dims: { B: COPY.batch } });
  const params = initCopyParams(seed);
  const opt = new AdamW({ lr: 1e-2 });
  const rand = rng(seed + 1);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const out = await exe.run({ ...params, ...copyBatch(rand) });
    const loss = Number(out.loss!.data[0]);
    losses.push(loss);
    onStep?.(s, loss);
    for (const n of names) opt.update(n, params[n]!.data as Float32Array, out[gradName(n)]!.data as Float32Array);
  }
  await exe.release();
  return losses;
}

if (import.meta.main) {
  const steps = Number(process.argv[2] ?? 300);
  const start = performance.now();
  await trainCopyTask(steps, 0, (s, loss) => {
    if (s % 25 === 0 || s === steps - 1) console.log(`step ${String(s).padStart(4)}  loss ${loss.toFixed(4)}  (chance ${Math.log(COPY.vocab - 1).toFixed(2)})`);
  });
  console.log(`${steps} steps in ${((performance.now() - start) / 1000).toFixed(1)} s`);
}
