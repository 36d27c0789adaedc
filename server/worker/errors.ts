/**
 * Error codes of a failed job. The code says whose problem it is: the request's (retrying cannot help), or the
 * machine's (the process died: a retry resumes from the latest checkpoint and may well succeed).
 */
export const ERROR_CODES = {
  /** The run config or the plugins were refused. */
  invalid_config: false,
  /** The training (or validation) file could not be used. */
  invalid_training_file: false,
  /** The model could not be opened or downloaded. */
  model_unavailable: false,
  /** The run does not fit the memory budget even at micro-batch 1 with checkpointing. */
  memory_budget: false,
  /** Another process holds the run folder (the previous child of the same job has not exited). */
  run_busy: true,
  /** The trainer threw something else. */
  training_error: false,
  /** The child process was killed by a signal nobody here sent (the kernel's OOM killer sends SIGKILL). */
  worker_killed: true,
  /** The child exited with a non-zero code without reporting an error (a crash in native code, an abort). */
  worker_crashed: true,
  /** The child exited normally without a result (a bug in the worker). */
  worker_protocol: false,
  /** The child could not be started. */
  worker_spawn_failed: true,
} as const satisfies Record<string, boolean>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** True when running the job again (it resumes from its latest checkpoint) may succeed. */
export function isRetryable(code: string): boolean {
  return (ERROR_CODES as Record<string, boolean>)[code] ?? false;
}

/** The code of an error thrown by the trainer, from its type or the module that wrote its message. */
export function classifyError(e: unknown): ErrorCode {
  const name = e instanceof Error ? e.name : '';
  const message = e instanceof Error ? e.message : String(e);
  if (name === 'RunBusyError') return 'run_busy';
  if (name === 'BudgetError' || /^memory\.budget/.test(message)) return 'memory_budget';
  if (name === 'HubError' || /model folder|no config\.json|repo id/i.test(message)) return 'model_unavailable';
  if (name === 'DatasetError' || /loadDataset|no training examples|unsupported file type|cannot detect the record format|malformed/i.test(message)) return 'invalid_training_file';
  if (/invalid config|cannot load plugins|^plugin|plugins\[/i.test(message)) return 'invalid_config';
  return 'training_error';
}
