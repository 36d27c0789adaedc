/**
 * One optimizer step's arithmetic: the batch's micro-batches through the gradient estimator, their gradients
 * accumulated weighted by loss tokens, global-norm clipping and the optimizer update. The trainer around it runs the
 * hooks, the records and the schedules.
 */
import type { HostTensor } from '../ir/host.ts';
import { clipGradNorm } from '../optim/clip.ts';
import { GradAccumulator } from '../optim/accumulate.ts';
import { DeviceOptimizer } from '../optim/device.ts';
import type { StepContext } from '../plugin/context.ts';
import type { GradientEstimator } from '../plugin/estimator.ts';
import type { MicroBatch } from './batches.ts';
import type { CompileCache } from './graphs.ts';
import type { makeOptimizer } from './optimizer.ts';
import type { RunModel } from './setup.ts';

/**
 * Frees the memory of arrays that are no longer needed (gradients after the update) right away, by detaching their
 * buffers: waiting for the collector leaves a gradient-sized set of dead arrays alive during the next step's peak.
 */
export function releaseArrays(arrays: Iterable<Float32Array>): void {
  for (const a of arrays) {
    const buffer = a.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer };
    if (typeof buffer.transfer === 'function' && !(buffer as { detached?: boolean }).detached) buffer.transfer(0);
  }
}

export interface StepInput {
  m: RunModel;
  micro: readonly MicroBatch[];
  estimator: GradientEstimator;
  trainable: readonly string[];
  cache: CompileCache;
  optimizer: ReturnType<typeof makeOptimizer>;
  lr: number;
  maxGradNorm: number | null;
  /** The hooks' context for a micro-batch's dims. */
  stepCtx: (dims: Record<string, number>) => StepContext;
}

export interface StepOutput {
  /** Mean loss per loss token over the batch. */
  loss: number;
  tokens: number;
  gradNorm?: number;
  /** The gradients the update used (absent when the estimator applied its own); valid until `release()`. */
  grads?: Map<string, Float32Array>;
  computeSeconds: number;
  updateSeconds: number;
  /** Frees a single micro-batch's gradient arrays once every hook has read them. */
  release(): void;
}

export async function optimizerStep(s: StepInput): Promise<StepOutput> {
  const { m, micro } = s;
  const acc = new GradAccumulator();
  let lossSum = 0, lossTokens = 0, tokens = 0, applied = false, computeSeconds = 0;
  let single: Map<string, Float32Array> | undefined;
  for (const mbatch of micro) {
    const ctx = s.stepCtx(mbatch.dims);
    const feeds: Record<string, HostTensor> = { ...mbatch.feeds };
    for (const { value } of await m.driver.collect('step:feeds', ctx)) Object.assign(feeds, value);
    const computeStarted = performance.now();
    const r = await s.estimator.estimate({
      ctx, forward: m.forward, boundaries: m.boundaries, trainable: [...s.trainable], feeds, lr: s.lr,
      compile: (graph, key) => s.cache.get(`${key}|${mbatch.dims.B}x${mbatch.dims.T}`, () => graph, mbatch.dims),
    });
    computeSeconds += (performance.now() - computeStarted) / 1000;
    // One micro-batch: its gradients are the step's, without a copy into accumulation buffers.
    if (r.grads && mbatch.lossTokens > 0) {
      if (micro.length === 1) single = r.grads;
      else {
        acc.add(r.grads, mbatch.lossTokens);
        releaseArrays(r.grads.values());
      }
    }
    applied ||= r.applied === true;
    lossSum += r.loss * mbatch.lossTokens;
    lossTokens += mbatch.lossTokens;
    tokens += mbatch.tokens;
  }
  let gradNorm: number | undefined;
  let grads: Map<string, Float32Array> | undefined;
  const updateStarted = performance.now();
  if (!applied && lossTokens > 0) {
    grads = single ?? acc.result();
    if (s.optimizer instanceof DeviceOptimizer) {
      // train.optimizerOn 'device': clipping and the update run as compiled graphs (core/optim/device.ts).
      const current = new Map(s.trainable.map((n) => [n, m.params.get(n)!.data as Float32Array]));
      gradNorm = (await s.optimizer.clipAndStep(current, grads, s.lr, s.maxGradNorm)).norm;
    } else {
      if (s.maxGradNorm !== null) gradNorm = clipGradNorm(grads.values(), s.maxGradNorm).norm;
      const current = new Map(s.trainable.map((n) => [n, m.params.get(n)!.data as Float32Array]));
      await s.optimizer.step(current, grads, s.lr);
    }
  }
  return {
    loss: lossSum / Math.max(lossTokens, 1), tokens, gradNorm, grads, computeSeconds,
    updateSeconds: (performance.now() - updateStarted) / 1000,
    // The accumulator's own buffers are reused by the next step; a single micro-batch's arrays are freed.
    release: () => { if (single) releaseArrays(single.values()); },
  };
}
