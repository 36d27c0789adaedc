/** `ft:<base>:<suffix>:<id>`: the fine-tuned model's name, as OpenAI builds it (the base's folder or Hub name). */
import type { JobRecord } from '../store/types.ts';

export function fineTunedModelName(job: JobRecord): string {
  const suffix = (job.spec.suffix as string | null | undefined) || 'tuneforge';
  const base = job.model.replace(/[:\s]/g, '-');
  return `ft:${base}:${suffix}:${job.id.replace(/^ftjob-/, '')}`;
}
