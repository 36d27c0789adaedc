/**
 * The training loop. Per optimizer step: plugins' `step:before`; the batch is split into micro-batches whose
 * gradients (from the estimator, backprop by default) are accumulated weighted by their loss tokens; global-norm
 * clipping; the optimizer update at the scheduled learning rate; `step:after`; metrics, evaluation and checkpoints
 * on their schedules. A run resumes exactly from its latest checkpoint.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadLatestCheckpoint, saveCheckpoint } from '../checkpoint/index.ts';
import { BatchStream } from '../data/stream.ts';
import type { HostTensor } from '../ir/host.ts';
import { clipGradNorm } from '../optim/clip.ts';
import { GradAccumulator } from '../optim/accumulate.ts';
import { lrAt } from '../optim/schedule.ts';
import type { StepContext } from '../plugin/context.ts';
import type { Plugin } from '../plugin/hooks.ts';
import { createProgress, openMetrics, readMetrics, writeLossChart, type ProgressStream } from '../report/index.ts';
import { seededRandom } from '../generate/sampling.ts';
import { collectGarbage, createPlanner, fitToBudget, fixMmapThreshold, parseBudget, peakRssBytes, rssBytes } from '../memory/index.ts';
import { microBatches } from './batches.ts';
import type { TrainConfig } from './config.ts';
import { CompileCache, backprop } from './graphs.ts';
import { checkpointedBackprop } from './checkpointed.ts';
import { evaluateRun } from './evaluate.ts';
import { finishRun } from './finish.ts';
import { makeOptimizer, optimizerFromCheckpoint, optimizerToCheckpoint } from './optimizer.ts';
import { loadRunDataInChild } from './data-process.ts';
import { setupModel, trainableSet } from './setup.ts';

export interface TrainOptions {
  config: TrainConfig;
  plugins: readonly Plugin[];
  /** Continue from the latest checkpoint in the output folder when there is one (default true). */
  resume?: boolean;
  /** Stop after this many steps of this process without finishing the run (tests of kill-and-resume). */
  stopAfterSteps?: number;
  /** Where progress is drawn (default stderr); lines of the log go to `log`. */
  progress?: ProgressStream;
  log?: (line: string) => void;
  /** Called after each metrics record is written (one per step, and the final evaluation's), e.g. to stream it. */
  onRecord?: (record: Readonly<Record<string, number>>) => void;
  /** Called after a checkpoint is saved, with its step and folder. */
  onCheckpoint?: (step: number, dir: string) => void;
  /**
   * Checked before each step: once aborted, the run saves a checkpoint of the steps done (unless the latest one is of
   * this step already) and returns unfinished, so a resumed run loses nothing (pausing a job).
   */
  signal?: AbortSignal;
}

export interface TrainResult {
  runDir: string;
  step: number;
  finished: boolean;
  /** Final values of every trained parameter. */
  trained: Map<string, HostTensor>;
  metrics: Record<string, number>;
  exported: string[];
}

/**
 * Frees the memory of arrays that are no longer needed (gradients after the update) right away, by detaching their
 * buffers: waiting for the collector leaves a gradient-sized set of dead arrays alive during the next step's peak.
 */
function releaseArrays(arrays: Iterable<Float32Array>): void {
  for (const a of arrays) {
    const buffer = a.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer };
    if (typeof buffer.transfer === 'function' && !(buffer as { detached?: boolean }).detached) buffer.transfer(0);
  }
}

const PLUGIN_TENSOR_PREFIX = 'plugin/';
const isHostTensor = (v: unknown): v is HostTensor =>
  typeof v === 'object' && v !== null && 'dtype' in v && 'shape' in v && ArrayBuffer.isView((v as HostTensor).data);

/** Plugin state may hold tensors (e.g. momentum buffers): they go to the checkpoint's tensor file, the rest to JSON. */
function splitPluginState(plugin: string, state: Record<string, unknown>, tensors: Map<string, HostTensor>): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(state)) {
    if (isHostTensor(v)) {
      tensors.set(`${PLUGIN_TENSOR_PREFIX}${plugin}/${k}`, v);
      json[k] = { $tensor: `${PLUGIN_TENSOR_PREFIX}${plugin}/${k}` };
    } else json[k] = v;
  }
  return json;
}

function joinPluginState(plugin: string, state: Record<string, unknown>, tensors: ReadonlyMap<string, HostTensor>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(state)) {
    const ref = typeof v === 'object' && v !== null && '$tensor' in v ? (v as { $tensor: string }).$tensor : undefined;
    out[k] = ref !== undefined ? tensors.get(ref) : v;
    if (ref !== undefined && !tensors.has(ref)) throw new Error(`checkpoint: state of plugin '${plugin}' refers to missing tensor ${ref}`);
  }
  return out;
}

/** Rewrites a metrics file without the records of steps after `step` (work lost when a run was killed). */
function dropMetricsAfter(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readMetrics(path).filter((r) => typeof r.step !== 'number' || r.step <= step);
  writeFileSync(path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

/** The predicted peak, and (with memory.budget) the micro-batch and checkpointing chosen to fit it. */
async function planRun(cfg: TrainConfig, plugins: readonly Plugin[], log: (l: string) => void): Promise<{ config: TrainConfig; predictedBytes: number }> {
  const planner = await createPlanner(cfg, plugins);
  if (cfg.memory.budget === undefined) return { config: cfg, predictedBytes: planner.plan().totalBytes };
  const fit = fitToBudget(planner, cfg.train.batchSize, parseBudget(cfg.memory.budget));
  if (fit.microBatchSize !== (cfg.train.microBatchSize ?? cfg.train.batchSize) || fit.checkpointing !== cfg.memory.checkpointing) {
    log(`memory.budget ${cfg.memory.budget}: micro-batch ${fit.microBatchSize} x ${fit.accumulationSteps} accumulation steps, checkpointing ${fit.checkpointing ? 'on' : 'off'} (predicted peak ${(fit.totalBytes / 2 ** 20).toFixed(0)} MiB)`);
  }
  return {
    config: { ...cfg, train: { ...cfg.train, microBatchSize: fit.microBatchSize }, memory: { ...cfg.memory, checkpointing: fit.checkpointing } },
    predictedBytes: fit.totalBytes,
  };
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  let cfg = opts.config;
  const log = opts.log ?? ((l: string) => console.error(l));
  let totalSteps = 0;
  // Before any onnxruntime session allocates: see core/memory/allocator.ts for why.
  if (cfg.memory.mmapThreshold !== false) await fixMmapThreshold(cfg.memory.mmapThreshold);
  const planned = await planRun(cfg, opts.plugins, log);
  const cfgFitted = planned.config;
  const m = await setupModel(cfgFitted, opts.plugins, () => totalSteps, log);
  cfg = cfgFitted;
  const data = await loadRunDataInChild(cfg, m.dir, log, m.ctx.model.config.maxPositions);
  const padId = m.tok.padId ?? 0;
  const t = cfg.train;
  const streamOptions = { batchSize: t.batchSize, padId, seed: cfg.seed, shuffle: true, bucketByLength: t.bucketByLength, drawRandom: t.sampling === 'random' };
  let stream = new BatchStream(data.train, streamOptions);
  totalSteps = t.steps ?? Math.ceil((t.epochs ?? 1) * stream.batchesPerEpoch);
  const schedule = { kind: t.schedule, lr: t.lr, warmupSteps: t.warmupSteps, warmupRatio: t.warmupRatio, ...(t.schedule === 'cosine' ? { minLrRatio: t.minLrRatio } : {}) } as Parameters<typeof lrAt>[2];

  let trainable = trainableSet(m);
  const everTrained = new Set(trainable);
  const optimizer = makeOptimizer(t, new Map([...m.params].map(([n, p]) => [n, p.shape])));
  const estimator = (await m.driver.first('step:estimator', m.ctx))?.value ?? (cfg.memory.checkpointing ? checkpointedBackprop() : backprop());
  const cache = new CompileCache();
  let step = 0;

  if (opts.resume ?? true) {
    const ckpt = await loadLatestCheckpoint(cfg.output, { onWarning: (w) => log(`checkpoint: ${w}`) });
    if (ckpt) {
      for (const [name, v] of ckpt.tensors) m.params.set(name, v);
      const state = ckpt.state as { stream: Parameters<typeof BatchStream.restore>[2]; optimizer: Record<string, number>; plugins: Record<string, Record<string, unknown>>; everTrained: string[] };
      optimizerFromCheckpoint(optimizer, new Map([...ckpt.optimizer].filter(([k]) => !k.startsWith(PLUGIN_TENSOR_PREFIX))), state.optimizer);
      stream = BatchStream.restore(data.train, streamOptions, state.stream);
      for (const p of m.driver.plugins) if (state.plugins[p.name]) p['state:load']?.(m.ctx, joinPluginState(p.name, state.plugins[p.name]!, ckpt.optimizer));
      for (const n of state.everTrained) everTrained.add(n);
      trainable = trainableSet(m);
      step = ckpt.step;
      log(`resumed from ${ckpt.path} at step ${step}`);
    }
  }

  let checkpointedStep = step; // the step of the latest checkpoint on disk (0 with none: nothing to lose yet)
  const metricsPath = join(cfg.output, 'metrics.jsonl');
  if (step > 0) dropMetricsAfter(metricsPath, step); // steps after the checkpoint are re-run: keep one record each
  const metricsFile = openMetrics(metricsPath);
  const metrics = {
    write(record: Record<string, number>): void {
      metricsFile.write(record);
      opts.onRecord?.(record);
    },
    close: () => metricsFile.close(),
  };
  const progress = createProgress({ total: totalSteps, label: 'train', stream: opts.progress, start: step });
  const evaluate = () => evaluateRun(cfg, m, data, cache);
  const checkpoint = async () => {
    const trainedNow = new Map([...everTrained].map((n) => [n, m.params.get(n)!]));
    const opt = optimizerToCheckpoint(optimizer);
    const plugins: Record<string, Record<string, unknown>> = {};
    const tensors = new Map(opt.tensors);
    for (const { plugin, value } of await m.driver.collect('state:save', m.ctx)) plugins[plugin] = splitPluginState(plugin, value, tensors);
    const dir = await saveCheckpoint(cfg.output, {
      step, tensors: trainedNow, optimizer: tensors,
      state: { stream: stream.state(), optimizer: opt.scalars, plugins, everTrained: [...everTrained], trainable },
    }, { keep: cfg.checkpoint.keep });
    checkpointedStep = step;
    opts.onCheckpoint?.(step, dir);
  };

  if (step === 0) await m.driver.sequential('train:start', m.ctx);
  let stepsThisProcess = 0;
  let lastEval: Record<string, number> = {};
  let lastRecord: Record<string, number> = {};
  /** Leaves the loop before the end of the run; the caller decides whether a checkpoint is written first. */
  const stopEarly = async (): Promise<TrainResult> => {
    progress.finish();
    metrics.close();
    await cache.clear();
    return { runDir: cfg.output, step, finished: false, trained: new Map([...everTrained].map((n) => [n, m.params.get(n)!])), metrics: lastRecord, exported: [] };
  };
  while (step < totalSteps) {
    if (opts.signal?.aborted) {
      if (checkpointedStep !== step) await checkpoint();
      log(`stopped at step ${step} of ${totalSteps} (asked to stop); the run resumes from the checkpoint of step ${step}`);
      return stopEarly();
    }
    // The previous step's gradients (arrays as large as the trainable parameters) are garbage now; collect them
    // before the next run reaches its peak instead of whenever the collector would get to them.
    collectGarbage();
    const started = performance.now();
    let retrace: string | undefined;
    const stepSeed = (cfg.seed * 1_000_003 + step * 7919) >>> 0;
    const random = seededRandom(stepSeed);
    const stepCtx = (dims: Record<string, number>): StepContext => ({
      ...m.ctx, step, trainable: new Set(trainable), dims, params: m.params, random, stepSeed,
      requestRetrace: (reason) => { retrace = reason; },
    });
    await m.driver.sequential('step:before', stepCtx({}));
    const batch = stream.next();
    const micro = microBatches(data.train, batch, t.microBatchSize ?? t.batchSize, padId, t.padMultiple);
    const acc = new GradAccumulator();
    let lossSum = 0, lossTokens = 0, tokens = 0, applied = false, computeSeconds = 0;
    let single: Map<string, Float32Array> | undefined;
    const lr = lrAt(step, totalSteps, schedule);
    for (const mb of micro) {
      const ctx = stepCtx(mb.dims);
      const feeds: Record<string, HostTensor> = { ...mb.feeds };
      for (const { value } of await m.driver.collect('step:feeds', ctx)) Object.assign(feeds, value);
      const computeStarted = performance.now();
      const r = await estimator.estimate({
        ctx, forward: m.forward, boundaries: m.boundaries, trainable, feeds, lr,
        compile: (graph, key) => cache.get(`${key}|${mb.dims.B}x${mb.dims.T}`, () => graph, mb.dims),
      });
      computeSeconds += (performance.now() - computeStarted) / 1000;
      // One micro-batch: its gradients are the step's, without a copy into accumulation buffers.
      if (r.grads && mb.lossTokens > 0) {
        if (micro.length === 1) single = r.grads;
        else {
          acc.add(r.grads, mb.lossTokens);
          releaseArrays(r.grads.values());
        }
      }
      applied ||= r.applied === true;
      lossSum += r.loss * mb.lossTokens;
      lossTokens += mb.lossTokens;
      tokens += mb.tokens;
    }
    let gradNorm: number | undefined;
    let grads: Map<string, Float32Array> | undefined;
    const updateStarted = performance.now();
    if (!applied && lossTokens > 0) {
      grads = single ?? acc.result();
      if (t.maxGradNorm !== null) gradNorm = clipGradNorm(grads.values(), t.maxGradNorm).norm;
      const current = new Map(trainable.map((n) => [n, m.params.get(n)!.data as Float32Array]));
      optimizer.step(current, grads, lr);
    }
    const updateSeconds = (performance.now() - updateStarted) / 1000;
    const loss = lossSum / Math.max(lossTokens, 1);
    step++;
    stepsThisProcess++;
    await m.driver.sequential('step:after', stepCtx({}), { loss, lr, gradNorm, tokens, grads });
    if (single) releaseArrays(single.values()); // after every use; the accumulator's own buffers are reused instead
    if (retrace) {
      const next = trainableSet(m);
      for (const n of trainable) if (!next.includes(n)) optimizer.forget(n); // frozen again: release its state
      for (const n of next) everTrained.add(n);
      log(`step ${step}: trainable set changed (${retrace}): ${next.length} tensors`);
      trainable = next;
      await cache.clear();
    }
    const seconds = (performance.now() - started) / 1000;
    const record: Record<string, number> = {
      step, total_steps: totalSteps, loss, lr, tokens, tok_s: tokens / seconds, step_s: seconds,
      compute_s: computeSeconds, // the gradient estimator's runs (compiling included on a new shape)
      update_s: updateSeconds, // clipping and the optimizer update
      rss_mb: rssBytes() / 2 ** 20, peak_rss_mb: peakRssBytes() / 2 ** 20, predicted_peak_mb: planned.predictedBytes / 2 ** 20,
      optimizer_mb: optimizer.stateBytes() / 2 ** 20, // after the update and any retrace's release of frozen-again state
    };
    if (gradNorm !== undefined) record.grad_norm = gradNorm;
    if (cfg.eval.every > 0 && step % cfg.eval.every === 0 && step < totalSteps) Object.assign(record, (lastEval = await evaluate()));
    metrics.write(record);
    lastRecord = record;
    progress.update(step, { loss, lr, 'tok/s': Math.round(tokens / seconds) });
    if (cfg.checkpoint.every > 0 && step % cfg.checkpoint.every === 0 && step < totalSteps) await checkpoint();
    if (opts.stopAfterSteps !== undefined && stepsThisProcess >= opts.stopAfterSteps && step < totalSteps) return stopEarly();
  }
  progress.finish();
  lastEval = await evaluate();
  if (Object.keys(lastEval).length) {
    metrics.write({ step, ...lastEval });
    log(`eval: ${Object.entries(lastEval).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
  }
  await checkpoint();
  metrics.close();
  await cache.clear();
  writeLossChart(join(cfg.output, 'metrics.jsonl'), join(cfg.output, 'loss.svg'));
  const trained = new Map([...everTrained].map((n) => [n, m.params.get(n)!]));
  const exported = await finishRun(cfg, m, trained, log);
  await m.driver.sequential('train:end', m.ctx);
  return { runDir: cfg.output, step, finished: true, trained, metrics: { ...lastEval, peak_rss_mb: peakRssBytes() / 2 ** 20, predicted_peak_mb: planned.predictedBytes / 2 ** 20 }, exported };
}
