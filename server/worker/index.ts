/** The job runner: one job's training in a child process (run.ts, child.ts), its outcome and error codes. */
export { startJobProcess, SPEC_FILE, type JobHandlers, type JobProcess, type StartOptions } from './run.ts';
export type { JobError, JobOutcome, JobStatus, WorkerSpec } from './spec.ts';
export { classifyError, ERROR_CODES, isRetryable, type ErrorCode } from './errors.ts';
export { LOCK_FILE } from './lock.ts';
