/** Stored records as the OpenAI objects clients read: every required key present, `null` where empty. */
import type { CheckpointRecord, EventRecord, FileRecord, JobRecord } from './store/types.ts';

export function fileObject(f: FileRecord) {
  return { id: f.id, object: 'file' as const, bytes: f.bytes, created_at: f.created_at, filename: f.filename, purpose: f.purpose, status: f.status, status_details: f.status_details, expires_at: null };
}

/** OpenAI's status set has no `paused`: a paused job reads as `paused` only to clients that know it (ours). */
export function jobObject(j: JobRecord) {
  const s = j.spec as Record<string, unknown>;
  return {
    id: j.id, object: 'fine_tuning.job' as const, created_at: j.created_at, error: j.error, fine_tuned_model: j.fine_tuned_model, finished_at: j.finished_at,
    hyperparameters: s.hyperparameters ?? { n_epochs: 'auto', batch_size: 'auto', learning_rate_multiplier: 'auto' },
    model: j.model, organization_id: 'org-tuneforge', result_files: j.result_files, seed: (s.seed as number | undefined) ?? 0, status: j.status,
    trained_tokens: j.trained_tokens, training_file: s.training_file as string, validation_file: (s.validation_file as string | null | undefined) ?? null,
    estimated_finish: j.estimated_finish, integrations: null, metadata: j.metadata, method: s.method ?? null,
    user_provided_suffix: (s.suffix as string | null | undefined) ?? null,
    tuneforge: { attempts: j.attempts, config: j.config },
  };
}

export function eventObject(e: EventRecord) {
  return { id: e.id, object: 'fine_tuning.job.event' as const, created_at: e.created_at, level: e.level, message: e.message, type: e.type, data: e.data ?? {} };
}

export function checkpointObject(c: CheckpointRecord) {
  return {
    id: c.id, object: 'fine_tuning.job.checkpoint' as const, created_at: c.created_at, fine_tuned_model_checkpoint: c.fine_tuned_model_checkpoint,
    fine_tuning_job_id: c.job_id, metrics: c.metrics, step_number: c.step_number,
  };
}

/** `{ object: 'list', data, has_more }`, with `first_id` / `last_id` as OpenAI adds them for files and checkpoints. */
export function list<T extends { id: string }>(data: T[], has_more: boolean, ids = false) {
  return { object: 'list' as const, data, has_more, ...(ids ? { first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null } : {}) };
}
