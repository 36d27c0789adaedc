/** What a run writes about itself beyond the step records: the metrics file trimmed on resume, the result lines. */
import { existsSync, writeFileSync } from 'node:fs';
import { readMetrics, type MetricsRecord } from '../report/index.ts';

/**
 * Rewrites a metrics file without the records of steps after `step` (work lost when a run was killed) and without
 * a final record (a finished run resumed writes its own).
 */
export function dropMetricsAfter(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readMetrics(path).filter((r) => (typeof r.step !== 'number' || r.step <= step) && r.final === undefined);
  writeFileSync(path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

/** `eval_accuracy 0.5092, val_accuracy 0.5110` (the headline metrics of an evaluation). */
export function describe(metrics: Record<string, number>): string {
  return Object.entries(metrics).filter(([k]) => !k.endsWith('_tokens')).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ');
}

/** Baseline (the step-0 record) against the final figures, side by side, for every evaluation metric. */
export function resultLines(records: readonly MetricsRecord[], chosen: Record<string, number>, which: string): string[] {
  const baseline = records.find((r) => r.step === 0 && r.final === undefined);
  const keys = Object.keys(chosen).filter((k) => /^(eval|val)_(accuracy|loss|ppl)$/.test(k));
  if (!keys.length) return [];
  return [`result${which}:`, ...keys.map((k) => {
    const before = typeof baseline?.[k] === 'number' ? (baseline[k] as number).toFixed(4) : '-';
    return `  ${k.padEnd(14)} before ${before}  after ${chosen[k]!.toFixed(4)}`;
  })];
}
