/** A run's memory plan from its config and its tokenised data, fitted to memory.budget when one is set. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveModel } from '../hub/index.ts';
import { createPlanner, fitToBudget, parseBudget, profileRunData, type MemoryPlan, type Planner } from '../memory/index.ts';
import { loadConfig } from '../models/load.ts';
import type { Plugin } from '../plugin/hooks.ts';
import type { TrainConfig } from './config.ts';
import { loadRunDataInChild } from './data-process.ts';
import type { RunData } from './setup.ts';

/** How the data shapes a run's memory (profileRunData's options from the config). */
export function dataProfileOf(cfg: TrainConfig, data: RunData, steps: number) {
  const t = cfg.train;
  return profileRunData(data, {
    batchSize: t.batchSize, microBatchSize: t.microBatchSize ?? t.batchSize, padMultiple: t.padMultiple, steps,
    bucketByLength: t.bucketByLength, evalBatchSize: cfg.eval.batchSize, evalMaxExamples: cfg.eval.maxExamples,
  });
}

/** Steps a run will take: train.steps, or its epochs over the training examples. */
export function runSteps(cfg: TrainConfig, trainExamples: number): number {
  const t = cfg.train;
  return t.steps ?? Math.ceil((t.epochs ?? 1) * Math.ceil(trainExamples / t.batchSize));
}

/** The run's tokenised data, prepared as the trainer prepares it (in a child process), for planning. */
export async function loadPlanData(cfg: TrainConfig, log: (l: string) => void): Promise<RunData> {
  const dir = await resolveModel(cfg.model);
  return loadRunDataInChild(cfg, dir, log, (await loadConfig(dir)).maxPositions);
}

/** A planner that knows the run's data: its sequence lengths, batch shapes, evaluation and size. */
export function plannerForData(cfg: TrainConfig, plugins: readonly Plugin[], data: RunData): Promise<Planner> {
  return createPlanner(cfg, plugins, { data: dataProfileOf(cfg, data, runSteps(cfg, data.train.length)) });
}

/** The predicted peak, and (with memory.budget) the micro-batch and checkpointing chosen to fit it. */
export async function planRun(cfg: TrainConfig, plugins: readonly Plugin[], data: RunData, log: (l: string) => void): Promise<{ config: TrainConfig; plan: MemoryPlan }> {
  const planner = await plannerForData(cfg, plugins, data);
  if (cfg.memory.budget === undefined) return { config: cfg, plan: planner.plan() };
  const fit = fitToBudget(planner, cfg.train.batchSize, parseBudget(cfg.memory.budget));
  if (fit.microBatchSize !== (cfg.train.microBatchSize ?? cfg.train.batchSize) || fit.checkpointing !== cfg.memory.checkpointing) {
    log(`memory.budget ${cfg.memory.budget}: micro-batch ${fit.microBatchSize} x ${fit.accumulationSteps} accumulation steps, checkpointing ${fit.checkpointing ? 'on' : 'off'} (predicted peak ${(fit.totalBytes / 2 ** 20).toFixed(0)} MiB)`);
  }
  return {
    config: { ...cfg, train: { ...cfg.train, microBatchSize: fit.microBatchSize }, memory: { ...cfg.memory, checkpointing: fit.checkpointing } },
    plan: fit,
  };
}

/** plan.json and config.json in the run folder: what the report shows next to the measured figures. */
export function writeRunDescription(cfg: TrainConfig, plugins: readonly Plugin[], plan: MemoryPlan): void {
  writeFileSync(join(cfg.output, 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
  const described = { ...cfg, plugins: plugins.map((p) => ({ name: p.name, options: p.options ?? {} })) };
  writeFileSync(join(cfg.output, 'config.json'), `${JSON.stringify(described, null, 2)}\n`);
}

/**
 * What a runner that keeps its sessions elsewhere (`residentWeights`: the sidecar) holds that the plan, made for one
 * process, does not show: each session there compiles in its own copy of the frozen weights, and there is a session
 * per training batch shape (one accumulate graph a shape with micro-batches) and per evaluation shape.
 */
export function remoteSessionsLine(runnerName: string, cfg: TrainConfig, data: RunData, plan: MemoryPlan): string {
  const profile = dataProfileOf(cfg, data, runSteps(cfg, data.train.length));
  const training = Math.max(1, Math.round(profile.trainShapes)), shapes = training + profile.evalShapes.length;
  const weights = plan.items.find((i) => i.component.startsWith('weights'))?.bytes ?? 4 * plan.parameters;
  const frozen = plan.parameters > 0 ? weights * (1 - plan.trainableParameters / plan.parameters) : 0;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  return `plan: the sessions run on ${runnerName}, which holds the compiled steps, their frozen weights and the activations; the plan above is for the whole run in one process. `
    + `There, each session keeps its own copy of the frozen weights: about ${shapes} batch shape${shapes === 1 ? '' : 's'} `
    + `(${training} training, ${profile.evalShapes.length} evaluation) x ${mib(frozen)} = ${mib(shapes * frozen)}`
    + (shapes > 2 ? '; fewer shapes with data.packText or a larger train.padMultiple' : '');
}
