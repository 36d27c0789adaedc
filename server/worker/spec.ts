/** What a training child is asked to do, and what a job's run ends with. */
import { z } from 'zod';
import type { TrainConfigInput } from '../../core/train/config.ts';

/** A job's run: the same spec started again resumes from the latest checkpoint in `config.output`. */
export interface WorkerSpec {
  jobId: string;
  /** A run config as JSON: plugins as names or `{ name, options }`, paths absolute (server/jobs/to-config.ts). */
  config: TrainConfigInput;
  /** Plugin packages the child may import beyond the built-ins (the server's allow-list, checked again here). */
  allowedPlugins?: string[];
  /** Refuse Hub downloads in the child too (HF_HUB_OFFLINE=1). */
  offline?: boolean;
}

export const workerSpecSchema = z
  .object({
    jobId: z.string().min(1),
    config: z.record(z.string(), z.unknown()),
    allowedPlugins: z.array(z.string()).optional(),
    offline: z.boolean().optional(),
  })
  .strict();

export type JobStatus = 'succeeded' | 'failed' | 'cancelled' | 'paused';

export interface JobError {
  /** See errors.ts for the codes and which of them a retry may cure. */
  code: string;
  message: string;
}

export interface JobOutcome {
  status: JobStatus;
  error?: JobError;
  /** Tokens trained on over the whole run (every process, from the run's metrics.jsonl). */
  trainedTokens: number;
  /** Files written at the end (export/adapter, export/model); empty unless succeeded. */
  exported: string[];
  /** The final metrics (loss, eval loss, peak memory), or the latest step's when the run did not finish. */
  metrics: Record<string, number>;
}
