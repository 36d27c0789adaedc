/**
 * The worker loop: claims queued jobs from the store (up to `concurrency` at once), trains each in its own child
 * process (server/worker), turns what the child reports into events, checkpoints and job fields, keeps the claim's
 * lease alive, and carries out cancel and pause requests. A crashed child is retried until `maxAttempts`; a server
 * that dies leaves its jobs running in the store, and they return to the queue (at once for SQLite, whose store is
 * this server's alone; when the lease lapses for Postgres), to resume from their latest checkpoint.
 */
import { hostname } from 'node:os';
import type { TrainConfigInput } from '../../core/train/config.ts';
import { join } from 'node:path';
import { newCheckpointId, nowSeconds } from '../ids.ts';
import type { Service } from '../service.ts';
import type { JobError, JobRecord } from '../store/types.ts';
import { deliverJobWebhooks } from '../webhooks.ts';
import { isRetryable } from '../worker/errors.ts';
import { startJobProcess, type JobProcess } from '../worker/run.ts';
import type { JobOutcome } from '../worker/spec.ts';
import { storeResultFiles } from './results.ts';
import { fineTunedModelName } from './names.ts';

export interface WorkerLoop {
  readonly workerId: string;
  /** Jobs this server is training now. */
  running(): string[];
  /** Stops claiming; running children are paused (they resume elsewhere or after a restart) unless `abandon`. */
  stop(opts?: { abandon?: boolean }): Promise<void>;
}

const died = (job: JobRecord): JobError => ({
  code: 'worker_died',
  message: `the job's worker process stopped unexpectedly ${job.attempts} time${job.attempts === 1 ? '' : 's'} (server restarts included); giving up after the service's limit of attempts`,
  param: null,
});

export async function startWorkerLoop(svc: Service, start: typeof startJobProcess = startJobProcess): Promise<WorkerLoop> {
  const { config, store } = svc;
  const workerId = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const active = new Map<string, { proc: JobProcess; job: JobRecord; control: JobRecord['control'] }>();
  let stopping = false;

  // Jobs a dead process left running: an exclusive store's are all ours from before, so they return now.
  for (const j of await store.recoverJobs(Date.now(), config.maxAttempts, died, store.exclusive)) {
    await svc.event(j.id, j.status === 'failed' ? 'error' : 'warn', j.status === 'failed' ? j.error!.message : 'The server restarted: the job is queued again and resumes from its latest checkpoint');
  }

  async function finish(job: JobRecord, outcome: JobOutcome): Promise<void> {
    const runDir = join(svc.paths.jobs, job.id);
    let done: JobRecord | undefined;
    if (outcome.status === 'succeeded') {
      const resultFiles = await storeResultFiles(svc, job.id, runDir);
      done = await store.updateJob(job.id, {
        status: 'succeeded', finished_at: nowSeconds(), fine_tuned_model: fineTunedModelName(job), result_files: resultFiles,
        trained_tokens: outcome.trainedTokens, estimated_finish: null, worker_id: null, lease_until: null, control: null,
      }, ['running']);
      if (done) await svc.event(job.id, 'info', `The job has successfully completed: ${done.fine_tuned_model}`);
    } else if (outcome.status === 'cancelled') {
      done = await store.updateJob(job.id, { status: 'cancelled', finished_at: nowSeconds(), worker_id: null, lease_until: null, control: null, estimated_finish: null }, ['running']);
      if (done) await svc.event(job.id, 'info', 'The job was cancelled');
    } else if (outcome.status === 'paused' && stopping) {
      // This server is shutting down: the job goes back to the queue, for another server or the restarted one.
      const requeued = await store.updateJob(job.id, { status: 'queued', worker_id: null, lease_until: null, control: null }, ['running']);
      if (requeued) await svc.event(job.id, 'info', 'The server is stopping: the job is queued again and resumes from its latest checkpoint');
      return;
    } else if (outcome.status === 'paused') {
      const paused = await store.updateJob(job.id, { status: 'paused', worker_id: null, lease_until: null, control: null, estimated_finish: null }, ['running']);
      if (paused) await svc.event(job.id, 'info', 'The job is paused after its latest checkpoint; resume continues from there');
      return;
    } else if (outcome.error && isRetryable(outcome.error.code) && job.attempts < config.maxAttempts && !stopping) {
      const requeued = await store.updateJob(job.id, { status: 'queued', worker_id: null, lease_until: null }, ['running']);
      if (requeued) await svc.event(job.id, 'warn', `${outcome.error.message}; retrying (attempt ${job.attempts + 1} of ${config.maxAttempts}) from the latest checkpoint`);
      return;
    } else {
      const error = outcome.error ?? { code: 'training_failed', message: 'training failed' };
      done = await store.updateJob(job.id, { status: 'failed', finished_at: nowSeconds(), error: { ...error, param: null }, worker_id: null, lease_until: null, control: null, estimated_finish: null }, ['running']);
      if (done) await svc.event(job.id, 'error', `The job failed: ${error.message}`);
    }
    if (done && config.webhooks.length) void deliverJobWebhooks(config.webhooks, done, svc.log);
  }

  function run(job: JobRecord): void {
    const startedAt = Date.now();
    let trained = job.trained_tokens ?? 0;
    const proc = start({ jobId: job.id, config: job.config as unknown as TrainConfigInput, allowedPlugins: [...config.allowPlugins], offline: config.offline }, {
      onLog: (line) => void svc.event(job.id, 'info', line),
      onMetrics: (record) => {
        const step = record.step ?? 0;
        const total = record.total_steps ?? (job.spec.total_steps as number | null | undefined) ?? undefined;
        const data: Record<string, unknown> = { step, total_steps: total ?? null, train_loss: record.loss ?? null, valid_loss: record.eval_loss ?? null, ...record };
        void svc.event(job.id, 'info', `Step ${step}${total ? `/${total}` : ''}: training loss=${record.loss?.toFixed(4) ?? '-'}`, 'metrics', data);
        const patch: Parameters<typeof store.updateJob>[1] = {};
        if (record.tokens !== undefined) patch.trained_tokens = (trained += record.tokens);
        if (total && step > 0) patch.estimated_finish = Math.round((startedAt + ((Date.now() - startedAt) / step) * total) / 1000);
        if (Object.keys(patch).length) void store.updateJob(job.id, patch, ['running']);
      },
      onCheckpoint: (step, dir, metrics) => void store.addCheckpoint({
        id: newCheckpointId(), job_id: job.id, created_at: nowSeconds(), step_number: step, metrics: { step, ...metrics },
        fine_tuned_model_checkpoint: `${fineTunedModelName(job)}:ckpt-step-${step}`, dir,
      }).then(() => svc.hub.notify(job.id)),
    });
    active.set(job.id, { proc, job, control: null });
    void svc.event(job.id, 'info', job.attempts > 1 ? `Fine-tuning job resumed (attempt ${job.attempts})` : 'Fine-tuning job started');
    proc.done
      .catch((e: unknown): JobOutcome => ({ status: 'failed', error: { code: 'worker_crashed', message: (e as Error).message }, trainedTokens: 0, exported: [], metrics: {} }))
      .then((outcome) => finish(job, outcome))
      .catch((e: unknown) => svc.log(`job ${job.id}: finishing failed: ${(e as Error).stack ?? e}`))
      .finally(() => active.delete(job.id));
  }

  async function tick(): Promise<void> {
    if (!store.exclusive) {
      for (const j of await store.recoverJobs(Date.now(), config.maxAttempts, died)) {
        await svc.event(j.id, j.status === 'failed' ? 'error' : 'warn', j.status === 'failed' ? j.error!.message : 'The server training this job stopped answering: queued again');
      }
    }
    while (!stopping && active.size < config.concurrency) {
      const job = await store.claimJob(workerId, Date.now() + config.leaseMs);
      if (!job) break;
      run(job);
    }
  }

  async function heartbeat(): Promise<void> {
    if (active.size === 0) return;
    await store.renewLeases(workerId, Date.now() + config.leaseMs);
    for (const [id, a] of active) {
      const current = await store.getJob(id);
      const control = current?.control ?? null;
      if (control === a.control) continue;
      a.control = control;
      if (control === 'cancel') a.proc.cancel();
      else if (control === 'pause') a.proc.pause();
    }
  }

  let busy = false;
  const guarded = (fn: () => Promise<void>) => async () => {
    if (busy) return;
    busy = true;
    try {
      await fn();
    } catch (e) {
      svc.log(`worker loop: ${(e as Error).message}`);
    } finally {
      busy = false;
    }
  };
  const poll = setInterval(guarded(async () => { await heartbeat(); await tick(); }), config.pollMs);
  void guarded(tick)();

  return {
    workerId,
    running: () => [...active.keys()],
    async stop(opts = {}) {
      stopping = true;
      clearInterval(poll);
      const pending = [...active.values()];
      for (const a of pending) (opts.abandon ? a.proc.cancel : a.proc.pause)();
      await Promise.all(pending.map((a) => a.proc.done.catch(() => undefined)));
    },
  };
}
