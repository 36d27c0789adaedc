/**
 * OpenAI's fine-tuning jobs API: create, list (with `metadata[k]=v` filters), retrieve, cancel, pause, resume,
 * events (a page, or a live server-sent stream that replays from `Last-Event-ID`), checkpoints. Status changes are
 * compare-and-set in the store, so a cancel racing a worker's finish has one winner and the store stays consistent.
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { ApiError, notFound } from '../errors.ts';
import { validationDone } from '../files/validate.ts';
import { idParam, jsonBody, pageParams } from '../http.ts';
import { newJobId, nowSeconds } from '../ids.ts';
import { checkpointObject, eventObject, jobObject, list } from '../objects.ts';
import type { Service } from '../service.ts';
import { TERMINAL, type JobRecord, type JobStatus } from '../store/types.ts';
import { planJob, prepareJob } from './job-request.ts';

async function getJob(svc: Service, c: Context): Promise<JobRecord> {
  const id = idParam(c, 'id', 'ftjob-');
  const job = await svc.store.getJob(id);
  if (!job) throw notFound('fine-tuning job', id, 'fine_tuning_job_id');
  return job;
}

/** `metadata[team]=nlp` query parameters. */
function metadataFilter(c: Context): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const [k, v] of new URL(c.req.url).searchParams) {
    const m = /^metadata\[(.+)\]$/.exec(k);
    if (m) out[m[1]!] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

/** Moves a queued job on once its files are validated (in the background: creation answers at once). */
async function queueAfterValidation(svc: Service, job: JobRecord, fileIds: string[]): Promise<void> {
  for (const id of fileIds) {
    const f = await validationDone(svc, id);
    if (f.status === 'error') {
      const failed = await svc.store.updateJob(job.id, { status: 'failed', finished_at: nowSeconds(), error: { code: 'invalid_training_file', message: `file ${id} failed validation: ${f.status_details}`, param: id === job.spec.training_file ? 'training_file' : 'validation_file' } }, ['validating_files']);
      if (failed) await svc.event(job.id, 'error', `Training file ${id} failed validation: ${f.status_details}`);
      return;
    }
  }
  const queued = await svc.store.updateJob(job.id, { status: 'queued' }, ['validating_files']);
  if (queued) await svc.event(job.id, 'info', 'Files validated; the job is queued');
}

const CANCELLABLE: JobStatus[] = ['validating_files', 'queued', 'paused'];

export function jobRoutes(svc: Service): Hono {
  const app = new Hono();
  const limits = svc.config.limits;

  app.post('/fine_tuning/jobs', async (c) => {
    const body = await jsonBody(c, z.unknown(), limits.bodyBytes);
    const id = newJobId();
    const prepared = await prepareJob(svc, body, id);
    if (svc.config.memoryBudget !== undefined) await planJob(svc, prepared); // refuses what cannot fit, with the smallest change
    const { request, training, validation, mapped } = prepared;
    const hyper = mapped.hyperparameters; // OpenAI reports the resolved values, not "auto"
    const pending = [training, validation].filter((f) => f && f.status === 'uploaded').map((f) => f!.id);
    const job: JobRecord = {
      id, created_at: nowSeconds(), status: pending.length ? 'validating_files' : 'queued', model: request.model,
      spec: {
        training_file: training.id, validation_file: validation?.id ?? null, seed: mapped.seed, suffix: request.suffix ?? null,
        hyperparameters: hyper, method: { type: 'supervised', supervised: { hyperparameters: hyper } }, total_steps: mapped.steps ?? null,
      },
      config: prepared.config, metadata: request.metadata ?? null, fine_tuned_model: null, finished_at: null, error: null, trained_tokens: null,
      estimated_finish: null, result_files: [], attempts: 0, worker_id: null, lease_until: null, control: null,
    };
    await svc.store.createJob(job);
    await svc.event(id, 'info', `Created fine-tuning job: ${id}`);
    if (pending.length) {
      await svc.event(id, 'info', 'Validating training file');
      void queueAfterValidation(svc, job, pending).catch(async (e: unknown) => {
        // The file went away while it was validated (deleted): the job cannot start.
        const failed = await svc.store.updateJob(id, { status: 'failed', finished_at: nowSeconds(), error: { code: 'invalid_training_file', message: `the training file could not be validated: ${(e as Error).message}`, param: 'training_file' } }, ['validating_files']);
        if (failed) await svc.event(id, 'error', `The job failed: the training file could not be validated (${(e as Error).message})`);
      });
    }
    return c.json(jobObject(job));
  });

  app.get('/fine_tuning/jobs', async (c) => {
    const page = await svc.store.listJobs({ ...pageParams(c, limits.listLimit), metadata: metadataFilter(c) });
    return c.json(list(page.data.map(jobObject), page.has_more));
  });

  app.get('/fine_tuning/jobs/:id', async (c) => c.json(jobObject(await getJob(svc, c))));

  app.post('/fine_tuning/jobs/:id/cancel', async (c) => {
    const job = await getJob(svc, c);
    const cancelled = await svc.store.updateJob(job.id, { status: 'cancelled', finished_at: nowSeconds(), control: null }, CANCELLABLE);
    if (cancelled) {
      await svc.event(job.id, 'info', 'The job was cancelled');
      return c.json(jobObject(cancelled));
    }
    const asked = await svc.store.updateJob(job.id, { control: 'cancel' }, ['running']);
    if (asked) {
      await svc.event(job.id, 'info', 'Cancelling the job: its worker stops at once');
      return c.json(jobObject(asked));
    }
    const now = await svc.store.getJob(job.id);
    throw new ApiError(400, `job ${job.id} is ${now?.status}: only a job that has not finished can be cancelled`, 'fine_tuning_job_id', 'job_not_cancellable');
  });

  app.post('/fine_tuning/jobs/:id/pause', async (c) => {
    const job = await getJob(svc, c);
    const paused = await svc.store.updateJob(job.id, { status: 'paused' }, ['queued']);
    if (paused) {
      await svc.event(job.id, 'info', 'The job is paused before it started');
      return c.json(jobObject(paused));
    }
    const asked = await svc.store.updateJob(job.id, { control: 'pause' }, ['running']);
    if (asked) {
      await svc.event(job.id, 'info', 'Pausing the job: it stops after writing a checkpoint');
      return c.json(jobObject(asked));
    }
    throw new ApiError(400, `job ${job.id} is ${(await svc.store.getJob(job.id))?.status}: only a queued or running job can be paused`, 'fine_tuning_job_id', 'job_not_pausable');
  });

  app.post('/fine_tuning/jobs/:id/resume', async (c) => {
    const job = await getJob(svc, c);
    const resumed = await svc.store.updateJob(job.id, { status: 'queued', control: null }, ['paused']);
    if (!resumed) throw new ApiError(400, `job ${job.id} is ${(await svc.store.getJob(job.id))?.status}: only a paused job can be resumed`, 'fine_tuning_job_id', 'job_not_paused');
    await svc.event(job.id, 'info', 'The job is resumed: queued, it continues from its latest checkpoint');
    return c.json(jobObject(resumed));
  });

  app.get('/fine_tuning/jobs/:id/events', async (c) => {
    const job = await getJob(svc, c);
    if (c.req.query('stream') === 'true') return streamEvents(svc, c, job.id);
    const page = await svc.store.listEvents(job.id, pageParams(c, limits.listLimit));
    return c.json(list(page.data.map(eventObject), page.has_more));
  });

  app.get('/fine_tuning/jobs/:id/checkpoints', async (c) => {
    const job = await getJob(svc, c);
    const page = await svc.store.listCheckpoints(job.id, pageParams(c, limits.listLimit));
    return c.json(list(page.data.map(checkpointObject), page.has_more, true));
  });

  return app;
}

/**
 * Server-sent events, oldest first: every event after `Last-Event-ID` (or the `after` query), then new ones as they
 * come; the stream ends once the job is finished and everything is sent. Each block carries the event's id, so a
 * client reconnecting with `Last-Event-ID` misses nothing and sees nothing twice.
 */
function streamEvents(svc: Service, c: Context, jobId: string): Response {
  const encoder = new TextEncoder();
  let last = c.req.header('last-event-id') ?? c.req.query('after') ?? undefined;
  const abort = c.req.raw.signal;
  let closed = false;
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      const send = (text: string) => {
        if (!closed && !abort.aborted) controller.enqueue(encoder.encode(text));
      };
      const drain = async () => {
        for (const e of await svc.store.eventsSince(jobId, last)) {
          send(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(eventObject(e))}\n\n`);
          last = e.id;
        }
      };
      send(': tuneforge event stream\n\n');
      try {
        for (;;) {
          const job = await svc.store.getJob(jobId);
          await drain();
          if (!job || abort.aborted || closed) break;
          if (TERMINAL.includes(job.status)) {
            // The worker writes its closing event just after the final status: give it a moment, then send it too.
            await svc.hub.wait(jobId, 500, abort);
            await drain();
            break;
          }
          await svc.hub.wait(jobId, 1000, abort);
          send(': keep-alive\n\n');
        }
        send('event: end\ndata: {}\n\n');
      } catch (e) {
        if (!closed && !abort.aborted) svc.log(`event stream of ${jobId}: ${(e as Error).message}`);
      } finally {
        if (!closed) {
          closed = true;
          controller.close();
        }
      }
    },
    cancel() {
      closed = true; // the client went away
    },
  });
  return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' } });
}
