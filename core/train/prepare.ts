/**
 * The static phase of a run, before its first step: data first (its lengths size the plan), then the plan (it may
 * change the micro-batch and checkpointing), then the model, the batches, the optimizer and how a step runs. What it
 * returns is what TrainingRun (trainer.ts) is made of.
 */
import { mkdirSync } from 'node:fs';
import { BatchStream } from '../data/stream.ts';
import { resolveModel } from '../hub/index.ts';
import { fixMmapThreshold } from '../memory/index.ts';
import { loadConfig } from '../models/load.ts';
import { DeviceOptimizer } from '../optim/device.ts';
import { withArenaRunner } from './arena.ts';
import { checkpointedBackprop } from './checkpointed.ts';
import { loadRunDataInChild } from './data-process.ts';
import { evaluationMetrics } from './evaluate.ts';
import { deviceOptimizerLine, fusedStepRefusal } from './fused-step.ts';
import { backprop } from './graphs.ts';
import { makeOptimizer } from './optimizer.ts';
import { planRun, remoteSessionsLine, writeRunDescription } from './plan-run.ts';
import type { TrainOptions } from './run-options.ts';
import { Selection } from './selection.ts';
import { setupModel, trainableSet } from './setup.ts';

export type PreparedRun = Awaited<ReturnType<typeof prepareRun>>;

/** `runLog`: the run's own log once it exists (plugins log through it, above the progress bar on a terminal). */
export async function prepareRun(options: TrainOptions, runLog: () => ((line: string) => void) | undefined) {
  let cfg = options.config;
  const log = options.log ?? ((l: string) => console.error(l));
  const opts = await withArenaRunner(options, log);
  // Before any onnxruntime session allocates: see core/memory/allocator.ts for why.
  if (cfg.memory.mmapThreshold !== false) await fixMmapThreshold(cfg.memory.mmapThreshold);
  const modelDir = await resolveModel(cfg.model);
  const data = await loadRunDataInChild(cfg, modelDir, log, (await loadConfig(modelDir)).maxPositions);
  const problems = Selection.problems(cfg, evaluationMetrics(data));
  if (problems.length) throw new Error(`config: ${problems.join('; ')}`);
  const planned = await planRun(cfg, opts.plugins, data, log);
  cfg = planned.config;
  if (opts.runner?.residentWeights) log(remoteSessionsLine(opts.runner.name, cfg, data, planned.plan));
  // A mixture-of-experts model's per-expert tensors may sit below the configured threshold: the plan lowers it.
  const threshold = planned.plan.mmapThreshold;
  if (threshold !== false && threshold !== cfg.memory.mmapThreshold && (await fixMmapThreshold(threshold)) !== undefined) {
    log(`memory.mmapThreshold ${cfg.memory.mmapThreshold} lowered to ${threshold}: the experts' tensors are smaller than it (core/memory/allocator.ts)`);
  }
  let totalSteps = 0;
  const m = await setupModel(cfg, opts.plugins, () => totalSteps, (line) => (runLog() ?? log)(line));
  const t = cfg.train;
  const streamOptions = { batchSize: t.batchSize, padId: m.tok.padId ?? 0, seed: cfg.seed, shuffle: true, bucketByLength: t.bucketByLength, drawRandom: t.sampling === 'random' };
  const stream = new BatchStream(data.train, streamOptions);
  totalSteps = t.steps ?? Math.ceil((t.epochs ?? 1) * stream.batchesPerEpoch);
  const optimizer = makeOptimizer(t, new Map([...m.params].map(([n, p]) => [n, p.shape])), opts.runner);
  const estimator = (await m.driver.first('step:estimator', m.ctx))?.value ?? (cfg.memory.checkpointing ? checkpointedBackprop() : backprop());
  const refusal = fusedStepRefusal(t, opts.runner, estimator, m);
  const fused = optimizer instanceof DeviceOptimizer && refusal === undefined;
  if (opts.runner && t.optimizerOn === 'device' && (refusal === undefined || opts.runner.residentWeights)) log(deviceOptimizerLine(opts.runner, refusal));
  mkdirSync(cfg.output, { recursive: true });
  writeRunDescription(cfg, opts.plugins, planned.plan);
  return { opts, cfg, m, data, plan: planned.plan, stream, streamOptions, totalSteps, trainable: trainableSet(m), optimizer, estimator, fused };
}
