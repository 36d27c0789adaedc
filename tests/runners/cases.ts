/**
 * The conformance cases: float32 versions of representative rows of the gradient tables (value and gradient of
 * sum(u · f(x)), so the backward kernels run too), fused AdamW steps (a regression, also through the trainer's fused
 * step with clipping), a LoRA gradient step and two fused AdamW steps on stories260k.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gradName, valueAndGrad } from '../../core/autodiff/vjp.ts';
import { trace, type Graph, type Tensor } from '../../core/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../core/ir/host.ts';
import { replay } from '../../core/ir/transform.ts';
import { buildCausalLM, causalLMLoss } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import * as nn from '../../core/nn/index.ts';
import * as op from '../../core/ops/api.ts';
import { captureStep, type ConformanceCase } from '../../runners/conformance.ts';
import type { Executable } from '../../core/compile.ts';
import { DeviceOptimizer } from '../../core/optim/device.ts';
import { loraGradientStep } from '../../runners/lora-step.ts';
import { normal, rng, type InputSpec } from '../gradcheck.ts';

/**
 * float32 tolerances (max |a - b| / max |b| per tensor): tiny graphs sum a few dozen terms; model steps thousands
 * per value. AdamW adds its own amplification: its step lr · m̂ / (√v̂ + eps) has a derivative of up to lr / eps in
 * g, so gradient rounding (~1e-5 relative) reaches the updated weights enlarged (measured 6e-5 after two steps).
 */
export const TOL_SMALL = 1e-5;
export const TOL_MODEL = 1e-4;
export const TOL_ADAMW = 2e-4;

interface TableRow { name: string; inputs: InputSpec[]; fn: (...xs: Tensor[]) => Tensor }

const rope = (x: Tensor) => {
  const [, , T, D] = x.shape as number[];
  const { cos, sin } = nn.ropeTables(op.iota(x, [T!], 0), nn.ropeInvFreq(D!, 10000), x.dtype);
  return nn.applyRope(x, cos, sin);
};

/** Rows of tests/primitives.grad.test.ts and tests/nn.grad.test.ts, one per kind of kernel. */
const ROWS: TableRow[] = [
  { name: 'matmul batched, both transposed', inputs: [{ shape: [2, 4, 3] }, { shape: [2, 5, 4] }], fn: (a, b) => op.matmul(a!, b!, { ta: true, tb: true }) },
  { name: 'matmul batch @ shared transposed weight (Gemm)', inputs: [{ shape: [2, 3, 4] }, { shape: [5, 4] }], fn: (a, b) => op.matmul(a!, b!, { tb: true }) },
  { name: 'softmax', inputs: [{ shape: [3, 7] }], fn: (x) => op.softmax(x!, 1) },
  { name: 'gather rows (ScatterND backward)', inputs: [{ shape: [5, 3] }, { shape: [2, 4], kind: 'int', values: [0, 4, 4, 1, 2, 2, 3, 0] }], fn: (t, i) => op.gather(t!, i!) },
  { name: 'take_along_axis (ScatterElements backward)', inputs: [{ shape: [3, 6] }, { shape: [3, 2], kind: 'int', range: 6 }], fn: (x, i) => op.takeAlongAxis(x!, i!, 1) },
  // One index per row, as the cross-entropy picks the label's logit: the backward is a one-hot Where (core/ops/indexing.ts).
  { name: 'take_along_axis, one index per row (one-hot backward)', inputs: [{ shape: [2, 3, 6] }, { shape: [2, 3, 1], kind: 'int', values: [5, 0, -1, 2, 2, -6] }], fn: (x, i) => op.takeAlongAxis(x!, i!, 2) },
  { name: 'layerNorm', inputs: [{ shape: [3, 8] }, { shape: [8] }, { shape: [8] }], fn: (x, w, b) => nn.layerNorm(x!, w, b, 1e-5) },
  { name: 'rmsNorm', inputs: [{ shape: [2, 3, 8] }, { shape: [8] }], fn: (x, w) => op.rmsNorm(x!, w!, 1e-5) },
  { name: 'rotary embedding', inputs: [{ shape: [2, 2, 5, 8] }], fn: (x) => rope(x!) },
  {
    name: 'causal GQA attention',
    inputs: [{ shape: [2, 4, 5, 8] }, { shape: [2, 2, 5, 8] }, { shape: [2, 2, 5, 8] }],
    fn: (q, k, v) => nn.attention(q!, k!, v!, nn.causalMask(q!, 5, 5)),
  },
  {
    name: 'cross-entropy with ignore index',
    inputs: [{ shape: [2, 4, 7] }, { shape: [2, 4], kind: 'int', values: [1, 6, -100, 0, 3, -100, -100, 2] }],
    fn: (logits, labels) => nn.crossEntropy(logits!, labels!),
  },
  {
    // Two int64 comparisons in one run: onnxruntime-web's WebGPU provider runs them on the CPU and both copies to
    // the GPU read the first one's result (docs/runners.md); the cross-entropy compares in int32 for that reason.
    name: 'two int64 comparisons',
    inputs: [{ shape: [2, 4] }, { shape: [2, 4], kind: 'int', values: [1, 6, -100, 0, 3, -100, -100, 2] }],
    fn: (x, labels) => op.add(op.mul(x!, op.cast(op.greaterEqual(labels!, op.scalar(labels!, 0)), 'float32')), op.cast(op.equal(labels!, op.scalar(labels!, -100)), 'float32')),
  },
];

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** One table row as a case: loss = sum(u · f(x)) and its gradient w.r.t. every float input, in float32. */
async function tableCase(row: TableRow, seed: number): Promise<ConformanceCase> {
  const rand = rng(seed);
  const names = row.inputs.map((_, i) => `x${i}`);
  const isInt = (s: InputSpec) => s.kind === 'int';
  const yShape = trace((g) => ({ y: row.fn(...row.inputs.map((s, i) => g.input(names[i]!, isInt(s) ? 'int64' : 'float32', s.shape))) })).outputs[0]!.v.shape as number[];
  const loss = trace((g) => {
    const xs = row.inputs.map((s, i) => g.input(names[i]!, isInt(s) ? 'int64' : 'float32', s.shape));
    return { loss: op.sum(op.mul(g.input('u', 'float32', yShape), row.fn(...xs))) };
  });
  const feeds: Record<string, HostTensor> = { u: hostTensor('float32', yShape, Array.from({ length: size(yShape) }, () => normal(rand))) };
  row.inputs.forEach((s, i) => {
    const n = size(s.shape);
    feeds[names[i]!] = isInt(s)
      ? hostTensor('int64', s.shape, s.values ?? Array.from({ length: n }, () => Math.floor(rand() * (s.range ?? 2))))
      : hostTensor('float32', s.shape, Array.from({ length: n }, () => normal(rand)));
  });
  const wrt = names.filter((_, i) => !isInt(row.inputs[i]!));
  return { name: row.name, step: await captureStep(valueAndGrad(loss, { of: 'loss', wrt })), rounds: [feeds], tol: TOL_SMALL };
}

export const tableCases = (): Promise<ConformanceCase[]> => Promise.all(ROWS.map((row, i) => tableCase(row, 11 + i)));

/** A batch of token ids [B, T] with next-token labels, from a seeded generator. */
function batch(B: number, T: number, vocab: number, seed: number): Record<string, HostTensor> {
  const rand = rng(seed);
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(Math.floor(rand() * vocab)));
  const labels = new BigInt64Array(B * T).fill(-100n);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) labels[b * T + t] = ids[b * T + t + 1]!;
  return { input_ids: hostTensor('int64', [B, T], ids), labels: hostTensor('int64', [B, T], labels) };
}

export const STORIES = join(import.meta.dir, '../../../shared/models/stories260k');
export const storiesMissing = (): string | undefined => (existsSync(join(STORIES, 'model.safetensors')) ? undefined : `${STORIES} is absent`);

/** LoRA (r 4, all linear layers) value and gradient on stories260k, base weights resident; B made non-zero. */
export async function loraCase(B = 2, T = 32): Promise<ConformanceCase> {
  // B starts at zero, which would make every gradient of A zero: give it small values so both are compared.
  const rand = rng(5);
  const { config, graph, weights, adapters } = await loraGradientStep(STORIES, {
    B, T, lora: { r: 4, alpha: 8, targets: 'all-linear' }, seed: 3, fillB: (n) => Array.from({ length: n }, () => 0.05 * normal(rand)),
  });
  const step = await captureStep(graph, { resident: weights });
  return { name: `stories260k LoRA gradient (${adapters.size} tensors, ${B}x${T})`, step, rounds: [{ ...batch(B, T, config.vocabSize, 9), ...Object.fromEntries(adapters) }], tol: TOL_MODEL, heavy: true };
}

export const ADAMW = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/**
 * Appends AdamW (torch.optim.AdamW's update) to a gradient graph, per parameter p with gradient g:
 *   m' = m + (1 - β1)(g - m),  v' = β2 v + (1 - β2) g²,  p' = p (1 - lr·wd) - stepSize · m' / (sqrt(v') · k + eps)
 * with stepSize = lr / (1 - β1^t) and k = 1 / sqrt(1 - β2^t) fed each step (weight decay on matrices only). The
 * outputs keep the loss and the gradients (so the update can be checked against core/optim's AdamW) and add p', m',
 * v', fed back as the next step's p, m, v.
 */
export function withAdamW(grads: Graph, params: readonly string[]): { graph: Graph; feedback: Record<string, string> } {
  const { g, env } = replay(grads);
  const out = (name: string) => env.get(grads.outputs.find((o) => o.name === name)!.v.id)!;
  const stepSize = g.input('adamw:step_size', 'float32', []);
  const k = g.input('adamw:inv_sqrt_bc2', 'float32', []);
  const outputs: Record<string, Tensor> = Object.fromEntries(grads.outputs.map((o) => [o.name, out(o.name)]));
  const feedback: Record<string, string> = {};
  for (const p of params) {
    const w = env.get(grads.inputs.find((i) => i.name === p)!.v.id)!, grad = out(gradName(p)); // w, grad: shape of p
    const m = g.input(`m:${p}`, 'float32', w.shape), v = g.input(`v:${p}`, 'float32', w.shape);
    const m2 = op.add(m, op.mul(op.sub(grad, m), 1 - ADAMW.beta1));
    const v2 = op.add(op.mul(v, ADAMW.beta2), op.mul(op.mul(grad, grad), 1 - ADAMW.beta2));
    const decay = 1 - ADAMW.lr * (w.shape.length > 1 ? ADAMW.weightDecay : 0);
    const p2 = op.sub(op.mul(w, decay), op.div(op.mul(m2, stepSize), op.add(op.mul(op.sqrt(v2), k), ADAMW.eps)));
    Object.assign(outputs, { [`new:${p}`]: p2, [`new:m:${p}`]: m2, [`new:v:${p}`]: v2 });
    Object.assign(feedback, { [`new:${p}`]: p, [`new:m:${p}`]: `m:${p}`, [`new:v:${p}`]: `v:${p}` });
  }
  return { graph: g.build(outputs), feedback };
}

/** Feeds of `rounds` AdamW steps: step t's scalars and batch; the first also the parameters and zero moments. */
function adamwRounds(params: ReadonlyMap<string, HostTensor>, rounds: number, batchOf: (t: number) => Record<string, HostTensor>): Record<string, HostTensor>[] {
  const feeds: Record<string, HostTensor>[] = [];
  for (let t = 1; t <= rounds; t++) {
    const scalars = {
      'adamw:step_size': hostTensor('float32', [], [ADAMW.lr / (1 - ADAMW.beta1 ** t)]),
      'adamw:inv_sqrt_bc2': hostTensor('float32', [], [1 / Math.sqrt(1 - ADAMW.beta2 ** t)]),
    };
    const zeros = (w: HostTensor) => hostTensor('float32', w.shape);
    const state = t === 1 ? Object.fromEntries([...params].flatMap(([n, w]) => [[n, w], [`m:${n}`, zeros(w)], [`v:${n}`, zeros(w)]])) : {};
    feeds.push({ ...batchOf(t), ...scalars, ...state });
  }
  return feeds;
}

/** A linear regression y = x Wᵀ + b trained by three fused AdamW steps: small enough for a software GPU. */
export async function tinyAdamwCase(rounds = 3): Promise<ConformanceCase> {
  const loss = trace((g) => {
    const x = g.input('x', 'float32', [8, 6]), y = g.input('y', 'float32', [8, 4]); // x: [N, in], y: [N, out]
    const pred = nn.linear(x, g.input('w', 'float32', [4, 6]), g.input('b', 'float32', [4]));
    return { loss: op.mean(op.square(op.sub(pred, y))) };
  });
  const { graph, feedback } = withAdamW(valueAndGrad(loss, { of: 'loss', wrt: ['w', 'b'] }), ['w', 'b']);
  const rand = rng(31);
  const randn = (shape: number[]) => hostTensor('float32', shape, Array.from({ length: size(shape) }, () => normal(rand)));
  const params = new Map([['w', randn([4, 6])], ['b', randn([4])]]);
  const feeds = adamwRounds(params, rounds, () => ({ x: randn([8, 6]), y: randn([8, 4]) }));
  return { name: `linear regression + AdamW, ${rounds} steps fed back`, step: await captureStep(graph), rounds: feeds, feedback, tol: TOL_SMALL };
}

/**
 * The same regression through the trainer's own fused step (`DeviceOptimizer.fuse`, what `train.optimizerOn:
 * 'device'` runs on a sidecar or in a page): gradients, clipping by global norm (0.5: every step clips) and AdamW in
 * one graph, three steps with parameters and moments fed back. Its norm is summed in float32 (core/optim/
 * device-graph.ts), so every node runs on WebGPU, which the suite's no-fallback WebGPU entry checks.
 */
export async function fusedClipCase(rounds = 3): Promise<ConformanceCase> {
  const loss = trace((g) => {
    const x = g.input('x', 'float32', [8, 6]), y = g.input('y', 'float32', [8, 4]); // x: [N, in], y: [N, out]
    const pred = nn.linear(x, g.input('w', 'float32', [4, 6]), g.input('b', 'float32', [4]));
    return { loss: op.mean(op.square(op.sub(pred, y))) };
  });
  const trainable = ['w', 'b'];
  const opt = DeviceOptimizer.adamw({ lr: ADAMW.lr, weightDecay: ADAMW.weightDecay });
  const graph = opt.fuse(valueAndGrad(loss, { of: 'loss', wrt: trainable }), trainable, true, 'only');
  const { feedback } = opt.fusedHolding(trainable, 'only', true);
  const rand = rng(37);
  const randn = (shape: number[], scale = 1) => hostTensor('float32', shape, Array.from({ length: size(shape) }, () => scale * normal(rand)));
  const params = new Map([['w', randn([4, 6])], ['b', randn([4])]]);
  // What the trainer feeds each step, from the optimizer's own bookkeeping: the first step the parameters and zero
  // moments too, later ones only the scalars (the rest is fed back).
  const exe = { inputs: graph.inputs.map((i) => ({ name: i.name })) } as unknown as Executable;
  const rounds_: Record<string, HostTensor>[] = [];
  for (let t = 0; t < rounds; t++) {
    rounds_.push({ x: randn([8, 6]), y: randn([8, 4], 3), ...opt.fusedFeeds(exe, params, trainable, { lr: ADAMW.lr, maxNorm: 0.5 }) });
    opt.fusedStepped(exe, trainable, 'only');
  }
  return { name: `linear regression + the trainer's fused AdamW with clipping, ${rounds} steps fed back`, step: await captureStep(graph), rounds: rounds_, feedback, tol: TOL_SMALL };
}

/** Full fine-tuning of stories260k with AdamW fused after the gradient graph, two steps fed back. */
export async function adamwCase(B = 2, T = 32, rounds = 2): Promise<ConformanceCase & { initial: ReadonlyMap<string, HostTensor> }> {
  const { config, weights } = await loadModel(STORIES);
  const model = trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, config, { batch: B, seq: T })) }));
  const params = [...weights.keys()];
  const { graph, feedback } = withAdamW(valueAndGrad(model, { of: 'loss', wrt: params }), params);
  return {
    name: `stories260k full fine-tuning + AdamW, ${rounds} steps fed back (${params.length} tensors, ${B}x${T})`,
    step: await captureStep(graph), rounds: adamwRounds(weights, rounds, (t) => batch(B, T, config.vocabSize, 20 + t)),
    feedback, tol: TOL_ADAMW, heavy: true, initial: weights,
  };
}
