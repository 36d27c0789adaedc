/**
 * A step whose training state stays on the runner (train.optimizerOn 'device' on a runner that shares stores: the
 * sidecar, or this process with memory.arena): one graph computes the loss, the gradients, the clip and the update
 * (core/optim/device-fused.ts), and the new parameters and moments stay in the runner's store for the next step. Only the batch goes out and the loss
 * and gradient norm come back; the host's parameters are read back when something here needs them (evaluation, a
 * checkpoint, the end: `DeviceOptimizer.syncState`).
 *
 * With micro-batches, each runs a graph that adds its share of the step's gradient in the store, then a graph with no
 * model updates from the sum (device-fused.ts `FusedRole`): one session per batch shape holds the frozen weights.
 * For runs whose steps need nothing between backward and update: backpropagation without activation checkpointing,
 * no plugin hook before or after a step (`fusedStepRefusal`).
 */
import type { HostTensor } from '../ir/host.ts';
import type { DeviceOptimizer } from '../optim/device.ts';
import type { FusedRole } from '../optim/device-fused.ts';
import type { GradientEstimator } from '../plugin/estimator.ts';
import type { Runner } from '../../runners/types.ts';
import type { TrainConfig } from './config.ts';
import { lossGradient } from './graphs.ts';
import type { StepInput, StepOutput } from './step.ts';
import type { RunModel } from './setup.ts';

/** Why a run cannot keep its state on the runner (undefined: it can). */
export function fusedStepRefusal(t: TrainConfig['train'], runner: Runner | undefined, estimator: GradientEstimator, m: RunModel): string | undefined {
  if (t.optimizerOn !== 'device') return 'not asked for';
  // In this process only with memory.arena's runner: without the arena the fused step is no faster than the update
  // in pieces and peaks higher (docs/memory-planner.md).
  if (!runner?.sharesStores) return `${runner?.name ?? 'this process'} keeps no store for a run's sessions (in this process, memory.arena gives it one)`;
  if (estimator.name !== 'backprop') return `the gradients come from '${estimator.name}', not plain backpropagation`;
  const hooked = m.driver.plugins.filter((p) => p['step:before'] || p['step:after']).map((p) => p.name);
  if (hooked.length) return `plugins ${hooked.join(', ')} act between steps (step:before / step:after), on the parameters or gradients here`;
  return undefined;
}

/** What train.optimizerOn 'device' does on `runner`, for the log (`refusal`: why the state cannot stay there). */
export function deviceOptimizerLine(runner: Runner, refusal: string | undefined): string {
  if (refusal === undefined) return `train.optimizerOn 'device' on ${runner.name}: the parameters and moments stay there (one graph a step: gradients, clipping, update); a step sends its batch and receives the loss and gradient norm, and the weights come back for evaluations, checkpoints and the end`;
  return `train.optimizerOn 'device' on ${runner.name}: the moments stay there, but ${refusal}, so each update sends the parameters and gradients again and receives the new parameters and clipped gradients, about 5x the trainable bytes a step against 2x with 'host'`;
}

export async function fusedOptimizerStep(s: StepInput & { optimizer: DeviceOptimizer }): Promise<StepOutput> {
  const { m } = s;
  // Micro-batches without loss tokens add nothing (accumulate.ts); with none left there is no update, as elsewhere.
  const micro = s.micro.filter((mb) => mb.lossTokens > 0);
  const tokens = s.micro.reduce((n, mb) => n + mb.tokens, 0);
  const lossTokens = micro.reduce((n, mb) => n + mb.lossTokens, 0);
  if (micro.length === 0) return { loss: 0, tokens, computeSeconds: 0, updateSeconds: 0, release: () => {} };
  const started = performance.now();
  const trainable = [...s.trainable], key = trainable.join(',');
  const clip = s.maxGradNorm !== null;
  const trainableSet = new Set(trainable);
  let lossSum = 0, gradNorm: number | undefined;
  // One micro-batch: one graph that also updates. More: each adds its share in the accumulate graph, then the update.
  const role: FusedRole = micro.length === 1 ? 'only' : 'accumulate';
  for (const [k, mbatch] of micro.entries()) {
    const ctx = s.stepCtx(mbatch.dims);
    const feeds: Record<string, HostTensor> = { ...mbatch.feeds };
    for (const { value } of await m.driver.collect('step:feeds', ctx)) Object.assign(feeds, value);
    const exe = await s.cache.get(`fused|${role}|${clip}|${key}|${mbatch.dims.B}x${mbatch.dims.T}`,
      () => s.optimizer.fuse(lossGradient(m.forward, trainable), trainable, clip, role), mbatch.dims, s.optimizer.fusedHolding(trainable, role, clip));
    Object.assign(feeds, s.optimizer.fusedFeeds(exe, m.params, trainable, { lr: s.lr, maxNorm: s.maxGradNorm, tokens: mbatch.lossTokens, keep: k === 0 ? 0 : 1 }));
    // Frozen weights the runner does not keep resident are fed as usual; trainable ones come from the store.
    for (const i of exe.inputs) if (!(i.name in feeds) && !trainableSet.has(i.name) && m.params.has(i.name)) feeds[i.name] = m.params.get(i.name)!;
    const out = await exe.run(feeds);
    s.optimizer.fusedStepped(exe, trainable, role);
    lossSum += Number(out.loss!.data[0]) * mbatch.lossTokens;
    if (out.norm) gradNorm = Number(out.norm.data[0]);
  }
  if (role === 'accumulate') {
    // No model in this graph: one session for every batch shape, holding only the trainable tensors' state.
    const exe = await s.cache.get(`fused|update|${clip}|${key}`,
      () => s.optimizer.fuse(lossGradient(m.forward, trainable), trainable, clip, 'update'), micro[0]!.dims, s.optimizer.fusedHolding(trainable, 'update', clip));
    const out = await exe.run(s.optimizer.fusedFeeds(exe, m.params, trainable, { lr: s.lr, maxNorm: s.maxGradNorm, invTokens: 1 / lossTokens }));
    s.optimizer.fusedStepped(exe, trainable, 'update');
    if (out.norm) gradNorm = Number(out.norm.data[0]);
  }
  return {
    loss: lossSum / lossTokens, tokens, ...(gradNorm !== undefined ? { gradNorm } : {}),
    computeSeconds: (performance.now() - started) / 1000, updateSeconds: 0, release: () => {},
  };
}
