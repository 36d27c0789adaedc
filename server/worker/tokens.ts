/** Tokens a run has trained on, from its metrics file: every process's steps, each step once. */
import { join } from 'node:path';
import { readMetrics } from '../../core/report/index.ts';

/**
 * Sums `tokens` of the step records (those with a throughput; evaluation records have none). The trainer drops the
 * records of steps after the checkpoint it resumes from, so work redone after a crash is not counted twice.
 */
export function trainedTokens(runDir: string): number {
  let sum = 0;
  try {
    for (const r of readMetrics(join(runDir, 'metrics.jsonl'))) {
      if (typeof r.tokens === 'number' && typeof r.tok_s === 'number') sum += r.tokens;
    }
  } catch {
    // A damaged metrics file says nothing reliable: report what is known, zero, rather than fail the job for it.
    return 0;
  }
  return sum;
}
