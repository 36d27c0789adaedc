/**
 * What the service keeps: uploaded files, fine-tuning jobs (with the queue's bookkeeping), their events and their
 * checkpoints. One interface, two implementations over SQL (sql-store.ts): SQLite (embedded, no set-up) and Postgres
 * (several servers sharing one queue). `conformance.ts` holds the test cases both must pass.
 */

export type FileStatus = 'uploaded' | 'processed' | 'error';
export type JobStatus = 'validating_files' | 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'paused';
export const TERMINAL: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

export interface FileRecord {
  id: string;
  /** Seconds since the epoch, as OpenAI's objects carry it. */
  created_at: number;
  bytes: number;
  /** The client's name for it: shown back, never used as a path. */
  filename: string;
  purpose: string;
  status: FileStatus;
  status_details: string | null;
}

export interface JobError {
  code: string;
  message: string;
  param: string | null;
}

/** A job as stored: the OpenAI-visible fields plus the queue's. */
export interface JobRecord {
  id: string;
  created_at: number;
  status: JobStatus;
  model: string;
  /** The OpenAI-visible fields fixed at creation (hyperparameters, method, files, seed, suffix, ...). */
  spec: Record<string, unknown>;
  /** The tuneforge run config the job runs (JSON). */
  config: Record<string, unknown>;
  metadata: Record<string, string> | null;
  fine_tuned_model: string | null;
  finished_at: number | null;
  error: JobError | null;
  trained_tokens: number | null;
  estimated_finish: number | null;
  result_files: string[];
  /** Worker processes started for it so far (a crash retries until the service's limit). */
  attempts: number;
  worker_id: string | null;
  /** Milliseconds since the epoch until which `worker_id` holds it; a lapsed lease returns it to the queue. */
  lease_until: number | null;
  /** What a client asked of a running job: the worker polls it. */
  control: 'cancel' | 'pause' | null;
}

export type JobPatch = Partial<Pick<JobRecord, 'status' | 'fine_tuned_model' | 'finished_at' | 'error' | 'trained_tokens' | 'estimated_finish' | 'result_files' | 'worker_id' | 'lease_until' | 'control' | 'config'>>;

export interface EventRecord {
  id: string;
  job_id: string;
  created_at: number;
  level: 'info' | 'warn' | 'error';
  message: string;
  type: 'message' | 'metrics';
  data: Record<string, unknown> | null;
  /** Global order of events: the stream's `Last-Event-ID` cursor. */
  seq: number;
}

export interface CheckpointRecord {
  id: string;
  job_id: string;
  created_at: number;
  step_number: number;
  metrics: Record<string, number>;
  fine_tuned_model_checkpoint: string;
  /** The checkpoint's folder under the service's home (internal). */
  dir: string;
}

/** A page of a list: newest first, starting after the `after` id (exclusive). */
export interface Page {
  after?: string;
  limit: number;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * True when this store belongs to one server process (SQLite): at start-up every job still marked running was
   * that process's, so it can be requeued at once instead of waiting for its lease to lapse.
   */
  readonly exclusive: boolean;

  createFile(f: FileRecord): Promise<void>;
  getFile(id: string): Promise<FileRecord | undefined>;
  listFiles(page: Page & { purpose?: string; order?: 'asc' | 'desc' }): Promise<{ data: FileRecord[]; has_more: boolean }>;
  updateFile(id: string, patch: Partial<Pick<FileRecord, 'status' | 'status_details' | 'bytes'>>): Promise<FileRecord | undefined>;
  deleteFile(id: string): Promise<boolean>;

  createJob(j: JobRecord): Promise<void>;
  getJob(id: string): Promise<JobRecord | undefined>;
  listJobs(page: Page & { metadata?: Record<string, string> }): Promise<{ data: JobRecord[]; has_more: boolean }>;
  /**
   * Applies `patch` when the job's status is one of `from` (all statuses when absent); returns the updated job, or
   * undefined when it does not exist or its status did not match (a compare-and-set: two requests cannot both win).
   */
  updateJob(id: string, patch: JobPatch, from?: readonly JobStatus[]): Promise<JobRecord | undefined>;
  /** Takes the oldest queued job for `workerId` (status running, attempts + 1, a lease), atomically across servers. */
  claimJob(workerId: string, leaseUntil: number): Promise<JobRecord | undefined>;
  /** Extends the leases of the worker's running jobs. */
  renewLeases(workerId: string, leaseUntil: number): Promise<void>;
  /**
   * Running jobs whose lease lapsed before `now` (or every running job, with `all`), back to the queue; those that
   * used `maxAttempts` fail with `error` instead. Returns the jobs changed.
   */
  recoverJobs(now: number, maxAttempts: number, error: (job: JobRecord) => JobError, all?: boolean): Promise<JobRecord[]>;

  /** Succeeded jobs' models, newest first: what `/v1/models` lists and completions may name. */
  fineTunedModels(): Promise<{ id: string; created_at: number; job_id: string; base: string }[]>;
  /** The job that produced a fine-tuned model. */
  jobByModel(fineTunedModel: string): Promise<JobRecord | undefined>;

  addEvent(e: Omit<EventRecord, 'seq'>): Promise<EventRecord>;
  /** Newest first, as the list endpoint pages them. */
  listEvents(jobId: string, page: Page): Promise<{ data: EventRecord[]; has_more: boolean }>;
  /** Oldest first, after the event with id `afterId` (all when absent): the stream's replay. */
  eventsSince(jobId: string, afterId?: string): Promise<EventRecord[]>;

  addCheckpoint(c: CheckpointRecord): Promise<void>;
  listCheckpoints(jobId: string, page: Page): Promise<{ data: CheckpointRecord[]; has_more: boolean }>;

  close(): Promise<void>;
}
