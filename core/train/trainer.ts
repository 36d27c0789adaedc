/**
 * The training loop, as named phases: `prepare` (data, the memory plan, the model), `resume` (the latest
 * checkpoint), `begin` (baseline evaluation and samples before training), `step` (one optimizer step, then any
 * evaluation and checkpoint due), and `finish` (the best checkpoint's weights, the final record, exports, samples
 * after, the report). Per optimizer step: plugins' `step:before`; the batch is split into micro-batches whose
 * gradients (from the estimator, backprop by default) are accumulated weighted by their loss tokens; global-norm
 * clipping; the optimizer update at the scheduled learning rate; `step:after`. A run resumes exactly from its
 * latest checkpoint, model selection and early stopping included.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BatchStream } from '../data/stream.ts';
import type { Graph } from '../ir/graph.ts';
import type { HostTensor } from '../ir/host.ts';
import { DeviceOptimizer } from '../optim/device.ts';
import { lrAt } from '../optim/schedule.ts';
import type { StepContext } from '../plugin/context.ts';
import type { GradientEstimator } from '../plugin/estimator.ts';
import type { Plugin } from '../plugin/hooks.ts';
import type { Runner } from '../../runners/types.ts';
import { createProgress, openMetrics, readMetrics, writeLossChart, writeRunReport, type Progress, type ProgressStream } from '../report/index.ts';
import { seededRandom } from '../generate/sampling.ts';
import { collectGarbage, peakRssBytes, rssBytes, type MemoryPlan } from '../memory/index.ts';
import { releaseFreedMemory } from '../memory/allocator.ts';
import { microBatches } from './batches.ts';
import { optimizerStep } from './step.ts';
import { describe, dropMetricsAfter, resultLines } from './run-log.ts';
import type { TrainConfig } from './config.ts';
import type { TrainOptions, TrainResult } from './run-options.ts';
import { CompileCache, backprop } from './graphs.ts';
import { fusedOptimizerStep } from './fused-step.ts';
import { evaluateRun, evaluationMetrics } from './evaluate.ts';
import { finishRun, generateSamples, type Sample } from './finish.ts';
import { makeOptimizer } from './optimizer.ts';
import { prepareRun } from './prepare.ts';
import { Selection } from './selection.ts';
import { RunCheckpoints } from './run-checkpoints.ts';
import { trainableSet, type RunData, type RunModel } from './setup.ts';

export type { TrainOptions, TrainResult } from './run-options.ts';
export { bestCheckpointDir } from './run-checkpoints.ts';

const mb = (bytes: number) => bytes / 2 ** 20;

class TrainingRun {
  step = 0;
  private checkpointedStep = 0; // the step of the latest checkpoint on disk (0 with none: nothing to lose yet)
  private stepsThisProcess = 0;
  private lastEval: { step: number; metrics: Record<string, number> } | undefined;
  private lastRecord: Record<string, number> = {};
  private everTrained: Set<string>;
  private progress: Progress | undefined;
  private metricsFile: ReturnType<typeof openMetrics> | undefined;
  private samplesBefore: Sample[] = [];
  readonly selection: Selection;
  private readonly cache: CompileCache;
  private readonly checkpoints: RunCheckpoints;
  private readonly schedule: Parameters<typeof lrAt>[2];
  private readonly hasEvalData: boolean;
  /**
   * Rows a short batch is padded to (batches.ts microBatches), so it reuses the full batches' session. Not for
   * models with a load-balancing term: it averages the router over every row, padding rows included.
   */
  private readonly padRowsTo: number | undefined;

  private constructor(
    private readonly opts: TrainOptions,
    readonly cfg: TrainConfig,
    private readonly m: RunModel,
    private readonly data: RunData,
    private readonly plan: MemoryPlan,
    private stream: BatchStream,
    private readonly streamOptions: ConstructorParameters<typeof BatchStream>[1],
    readonly totalSteps: number,
    private trainable: string[],
    private readonly optimizer: ReturnType<typeof makeOptimizer>,
    private readonly estimator: GradientEstimator,
    /** The training state stays on the runner: each step is one fused graph (fused-step.ts). */
    private readonly fused: boolean,
  ) {
    this.everTrained = new Set(trainable);
    this.cache = new CompileCache(undefined, opts.runner, (g) => this.frozenInputs(g), cfg.train.deterministic);
    this.selection = new Selection(cfg);
    this.checkpoints = new RunCheckpoints(cfg, m, optimizer, this.log);
    const t = cfg.train;
    this.schedule = { kind: t.schedule, lr: t.lr, warmupSteps: t.warmupSteps, warmupRatio: t.warmupRatio, ...(t.schedule === 'cosine' ? { minLrRatio: t.minLrRatio } : {}) } as Parameters<typeof lrAt>[2];
    this.hasEvalData = evaluationMetrics(data).length > 0;
    const moe = m.ctx.model.config.family.moe;
    this.padRowsTo = moe?.auxLossCoef != null ? undefined : t.batchSize;
  }

  /**
   * The inputs of a graph that are weights frozen at this step: compiled into the sessions of a runner that keeps
   * them (`residentWeights`). The trainable set only changes with a retrace, which clears the compiled sessions.
   */
  private frozenInputs(g: Graph): Map<string, HostTensor> {
    const frozen = new Map<string, HostTensor>();
    for (const { name } of g.inputs) {
      const t = this.m.params.get(name);
      if (t && !this.trainable.includes(name)) frozen.set(name, t);
    }
    return frozen;
  }

  /** Log lines; on a terminal they go above the progress bar (redrawn in place) instead of through it. */
  readonly log = (line: string): void => {
    if (this.progress && (this.opts.progress ?? process.stderr).isTTY === true) this.progress.log(line);
    else if (this.opts.log) this.opts.log(line);
    else console.error(line);
  };

  // ------------------------------------------------------------------------------------------------ prepare

  /** The static phase (prepare.ts: data, plan, model, optimizer), then the run made of it. */
  static async prepare(options: TrainOptions): Promise<TrainingRun> {
    let run: TrainingRun | undefined;
    // Plugins log through the run once it exists (above the progress bar on a terminal).
    const p = await prepareRun(options, () => run?.log);
    run = new TrainingRun(p.opts, p.cfg, p.m, p.data, p.plan, p.stream, p.streamOptions, p.totalSteps, p.trainable, p.optimizer, p.estimator, p.fused);
    return run;
  }

  // ------------------------------------------------------------------------------------------------ resume

  async resume(): Promise<void> {
    const { cfg, m } = this;
    if (this.opts.resume ?? true) {
      const resumed = await this.checkpoints.resume(this.data.train, this.streamOptions, this.selection);
      if (resumed) {
        this.stream = resumed.stream;
        for (const n of resumed.everTrained) this.everTrained.add(n);
        this.trainable = trainableSet(m);
        this.step = this.checkpointedStep = resumed.step;
        this.log(`resumed from ${resumed.path} at step ${this.step}`);
      }
    }
    const metricsPath = join(cfg.output, 'metrics.jsonl');
    if (this.step > 0) dropMetricsAfter(metricsPath, this.step); // steps after the checkpoint are re-run: keep one record each
    else if (existsSync(metricsPath)) writeFileSync(metricsPath, ''); // a fresh start: no records of an earlier run
    this.metricsFile = openMetrics(metricsPath);
    this.progress = createProgress({ total: this.totalSteps, label: 'train', stream: this.opts.progress, start: this.step });
  }

  // ------------------------------------------------------------------------------------------------ begin

  /** A fresh run: `train:start`, the baseline evaluation (a step-0 record) and the samples of the untrained model. */
  async begin(): Promise<void> {
    const samplesPath = join(this.cfg.output, 'samples.json');
    if (this.step > 0) {
      if (existsSync(samplesPath)) this.samplesBefore = (JSON.parse(readFileSync(samplesPath, 'utf8')) as { before?: Sample[] }).before ?? [];
      return;
    }
    await this.m.driver.sequential('train:start', this.m.ctx);
    if (this.cfg.eval.baseline && this.hasEvalData) {
      const metrics = await this.evaluateNow();
      this.writeRecord({ step: 0, ...metrics });
      this.log(`baseline (before training): ${describe(metrics)}`);
    }
    this.samplesBefore = await generateSamples(this.cfg, this.m, new Map(), this.log, 'sample before training');
    if (this.samplesBefore.length) writeFileSync(samplesPath, `${JSON.stringify({ before: this.samplesBefore, after: [] }, null, 2)}\n`);
  }

  // ------------------------------------------------------------------------------------------------ step

  get done(): boolean {
    return this.step >= this.totalSteps || this.selection.stopped;
  }

  get stepsDoneHere(): number {
    return this.stepsThisProcess;
  }

  async trainStep(): Promise<void> {
    const { cfg, m } = this;
    const t = cfg.train;
    const padId = m.tok.padId ?? 0;
    // The previous step's gradients (arrays as large as the trainable parameters) are garbage now; collect them
    // before the next run reaches its peak instead of whenever the collector would get to them.
    collectGarbage();
    const started = performance.now();
    let retrace: string | undefined;
    const step = this.step;
    const stepSeed = (cfg.seed * 1_000_003 + step * 7919) >>> 0;
    const random = seededRandom(stepSeed);
    // `step` is read when each hook runs: step:after sees the step just finished (counted from 1).
    const stepCtx = (dims: Record<string, number>): StepContext => ({
      ...m.ctx, step: this.step, trainable: new Set(this.trainable), dims, params: m.params, random, stepSeed,
      requestRetrace: (reason) => { retrace = reason; },
    });
    await m.driver.sequential('step:before', stepCtx({}));
    const batch = this.stream.next();
    const micro = microBatches(this.data.train, batch, t.microBatchSize ?? t.batchSize, padId, t.padMultiple, this.padRowsTo);
    const lr = lrAt(step, this.totalSteps, this.schedule);
    const input = {
      m, micro, estimator: this.estimator, trainable: this.trainable, cache: this.cache, optimizer: this.optimizer,
      lr, maxGradNorm: t.maxGradNorm, stepCtx,
    };
    const r = this.fused && this.optimizer instanceof DeviceOptimizer ? await fusedOptimizerStep({ ...input, optimizer: this.optimizer }) : await optimizerStep(input);
    const { loss, tokens, gradNorm, computeSeconds, updateSeconds } = r;
    this.step++;
    this.stepsThisProcess++;
    await m.driver.sequential('step:after', stepCtx({}), { loss, lr, gradNorm, tokens, grads: r.grads });
    r.release(); // after every use
    if (retrace) await this.switchTrainable(retrace);
    const seconds = (performance.now() - started) / 1000;
    const record: Record<string, number> = {
      step: this.step, total_steps: this.totalSteps, loss, lr, tokens, tok_s: tokens / seconds, step_s: seconds,
      compute_s: computeSeconds, // the gradient estimator's runs (compiling included on a new shape)
      update_s: updateSeconds, // clipping and the optimizer update
      rss_mb: mb(rssBytes()), peak_rss_mb: mb(peakRssBytes()), predicted_peak_mb: mb(this.plan.totalBytes),
      optimizer_mb: mb(this.optimizer.stateBytes()), // after the update and any retrace's release of frozen-again state
    };
    if (gradNorm !== undefined) record.grad_norm = gradNorm;
    const evalDue = this.hasEvalData && ((cfg.eval.every > 0 && this.step % cfg.eval.every === 0) || this.step === this.totalSteps);
    if (evalDue) Object.assign(record, await this.evaluateNow());
    this.writeRecord(record);
    this.progress!.update(this.step, { loss, lr, 'tok/s': Math.round(tokens / seconds) });
    const stopping = this.selection.stopped;
    if (stopping) this.log(`early stopping at step ${this.step}: ${cfg.checkpoint.best!.metric} has not improved for ${cfg.eval.earlyStopping!.patience} evaluations (best ${this.selection.best!.value.toFixed(4)} at step ${this.selection.best!.step})`);
    if ((cfg.checkpoint.every > 0 && this.step % cfg.checkpoint.every === 0 && this.step < this.totalSteps) || stopping) await this.checkpoint();
  }

  /** A plugin asked for a retrace (LISA's switch): the hooks' new trainable set replaces the old one. */
  private async switchTrainable(reason: string): Promise<void> {
    await this.syncState(); // the sessions holding the state are about to go
    const next = trainableSet(this.m);
    // Everything of the old trainable set goes before the next step compiles the new sessions: the sessions first
    // (the bulk), then the optimizer state of tensors frozen again; then the heaps are collected and trimmed, so the
    // new sessions are not allocated on top of freed but unreturned memory (LISA: RSS between steps 120-146 MB
    // instead of 142-150 over 1,000 steps; the peak's growth across switches is not explained by this alone).
    await this.cache.clear();
    if (this.optimizer instanceof DeviceOptimizer) this.optimizer.storeReleased();
    for (const n of this.trainable) if (!next.includes(n)) this.optimizer.forget(n); // frozen again: release its state
    for (const n of next) this.everTrained.add(n);
    this.log(`step ${this.step}: trainable set changed (${reason}): ${next.length} tensors`);
    this.trainable = next;
    await releaseFreedMemory();
  }

  /** Brings back what the runner holds newer than here (fused steps: the parameters and moments). */
  private async syncState(): Promise<void> {
    await this.optimizer.syncState?.();
  }

  // ------------------------------------------------------------------------------------------------ evaluation

  /** Evaluates the current weights; model selection sees the result, and a new best is saved at once. */
  private async evaluateNow(): Promise<Record<string, number>> {
    await this.syncState();
    const metrics = await evaluateRun(this.cfg, this.m, this.data, this.cache);
    this.lastEval = { step: this.step, metrics };
    const { improved } = this.selection.observe(this.step, metrics);
    if (improved) await this.saveBest();
    return metrics;
  }

  private writeRecord(record: Record<string, number>): void {
    this.metricsFile!.write(record);
    this.opts.onRecord?.(record);
    this.lastRecord = record;
  }

  // ------------------------------------------------------------------------------------------------ checkpoints

  private trainedNow(): Map<string, HostTensor> {
    return this.checkpoints.trained(this.everTrained);
  }

  async checkpoint(): Promise<void> {
    const dir = await this.checkpoints.save({ step: this.step, trainable: this.trainable, everTrained: this.everTrained, stream: this.stream, selection: this.selection });
    this.checkpointedStep = this.step;
    this.opts.onCheckpoint?.(this.step, dir);
  }

  private saveBest(): Promise<void> {
    return this.checkpoints.saveBest(this.step, this.everTrained);
  }

  private restoreBest(): Promise<number | undefined> {
    return this.checkpoints.restoreBest(this.selection, this.step);
  }

  // ------------------------------------------------------------------------------------------------ leaving

  /** Every compiled session of the run (the step's, evaluation's, a device optimizer's), on whichever runner holds it. */
  private async releaseSessions(): Promise<void> {
    await this.syncState(); // before the sessions that hold it go
    await this.cache.clear();
    if (this.optimizer instanceof DeviceOptimizer) await this.optimizer.release();
  }

  /** Leaves before the end of the run (asked to stop, or stopAfterSteps); `save` writes a checkpoint first. */
  async leave(save: boolean): Promise<TrainResult> {
    if (save && this.checkpointedStep !== this.step) await this.checkpoint();
    this.progress?.finish();
    this.metricsFile?.close();
    await this.releaseSessions();
    return { runDir: this.cfg.output, step: this.step, finished: false, trained: this.trainedNow(), metrics: this.lastRecord, exported: [] };
  }

  /** The end: last checkpoint, the chosen weights, the final record, exports, samples after, charts and the report. */
  async finish(): Promise<TrainResult> {
    const { cfg, m } = this;
    this.progress!.finish();
    // A resumed finished run has no evaluation in memory: score the last step again (selection has seen it already).
    if (this.hasEvalData && this.lastEval?.step !== this.step) {
      await this.syncState();
      const seen = this.selection.lastEvalStep === this.step;
      const metrics = await evaluateRun(cfg, m, this.data, this.cache);
      this.lastEval = { step: this.step, metrics };
      if (!seen && this.selection.observe(this.step, metrics).improved) await this.saveBest();
    }
    if (this.checkpointedStep !== this.step) await this.checkpoint();
    const bestStep = await this.restoreBest();
    const chosen = bestStep !== undefined && bestStep !== this.step ? this.selection.best!.metrics : (this.lastEval?.metrics ?? {});
    const final: Record<string, number> = {
      step: this.step, ...chosen, final: 1, predicted_peak_mb: mb(this.plan.totalBytes), peak_rss_mb: mb(peakRssBytes()),
      ...(cfg.checkpoint.best && bestStep !== undefined ? { best_step: bestStep } : {}),
      ...(this.selection.stopped ? { stopped_early: 1 } : {}),
    };
    this.writeRecord(final);
    const which = cfg.checkpoint.best && bestStep !== undefined ? ` (best checkpoint: step ${bestStep} by ${cfg.checkpoint.best.metric})` : '';
    for (const line of resultLines(readMetrics(join(cfg.output, 'metrics.jsonl')), chosen, which)) this.log(line);
    this.metricsFile!.close();
    await this.releaseSessions();
    writeLossChart(join(cfg.output, 'metrics.jsonl'), join(cfg.output, 'loss.svg'));
    const trained = this.trainedNow();
    const exported = await finishRun(cfg, m, trained, this.log);
    const after = await generateSamples(cfg, m, trained, this.log, 'sample after training');
    if (after.length || this.samplesBefore.length) writeFileSync(join(cfg.output, 'samples.json'), `${JSON.stringify({ before: this.samplesBefore, after }, null, 2)}\n`);
    await m.driver.sequential('train:end', m.ctx);
    this.log(`report: ${writeRunReport(cfg.output)}`);
    const { step: _s, final: _f, ...metrics } = final;
    return { runDir: cfg.output, step: this.step, finished: true, trained, metrics, exported, ...(bestStep !== undefined && cfg.checkpoint.best ? { bestStep } : {}) };
  }
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const run = await TrainingRun.prepare(opts);
  await run.resume();
  await run.begin();
  while (!run.done) {
    if (opts.signal?.aborted) {
      run.log(`stopped at step ${run.step} of ${run.totalSteps} (asked to stop); the run resumes from the checkpoint of step ${run.step}`);
      return run.leave(true);
    }
    await run.trainStep();
    if (opts.stopAfterSteps !== undefined && run.stepsDoneHere >= opts.stopAfterSteps && !run.done) return run.leave(false);
  }
  return run.finish();
}
