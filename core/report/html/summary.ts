/**
 * The figures of a run derived from its metrics records: the per-step curves, the evaluation curves, the baseline
 * (step 0) and final evaluations, and the run's totals. Charts and tables both read from here, so they agree.
 */
import type { MetricsRecord } from '../metrics.ts';
import type { RunReportData } from './data.ts';

/** Evaluation keys: the dev/test set (`eval_`) and a validation split (`val_`). */
export const isEvalKey = (k: string): boolean => k.startsWith('eval_') || k.startsWith('val_');

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** A record's evaluation figures (finite numbers only). */
function evalsOf(r: MetricsRecord): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of Object.entries(r)) if (isEvalKey(k) && num(v) !== undefined) out.set(k, v as number);
  return out;
}

/** One evaluation: its step and figures. */
export interface EvalPoint {
  step: number;
  values: Map<string, number>;
}

/** What the report shows of one run's metrics. */
export interface RunSummary {
  /** Per-step training records (those with a `loss`), one per step (a resumed run's repeat wins), by step. */
  steps: MetricsRecord[];
  /** Every evaluation key in the run, `eval_` keys first, then `val_`, each in order of first appearance. */
  evalKeys: string[];
  /** Each key's `[step, value]` points, one per step (the later record wins), by step; the baseline included, the final record at `best_step`. */
  evalCurves: Map<string, [number, number][]>;
  /** The evaluation before training (a step-0 record with eval keys). */
  baseline?: EvalPoint;
  /** The final evaluation (the record marked `final`, else the last one after step 0); the best checkpoint's when `bestStep` is set. */
  final?: EvalPoint;
  bestStep?: number;
  stoppedEarly: boolean;
  /** The last step reached and the planned number of steps. */
  lastStep?: number;
  totalSteps?: number;
  /** Tokens trained on (sum over the per-step records). */
  tokens?: number;
  /** Milliseconds from the first to the last record's `time`. */
  wallMs?: number;
  /** MiB: the last recorded prediction (`predicted_peak_mb`, else the plan's total) and the last measured peak. */
  predictedPeakMb?: number;
  measuredPeakMb?: number;
  /** (predicted - measured) / measured, in %: negative when the plan under-predicts. */
  peakErrorPct?: number;
}

/** The last finite value of `field` in `records`. */
export function lastOf(records: readonly MetricsRecord[], field: string): number | undefined {
  for (let i = records.length - 1; i >= 0; i--) {
    const v = num(records[i]![field]);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** Derives the report's figures from a run's records (and its plan, for a prediction the metrics lack). */
export function summarizeRun(run: RunReportData): RunSummary {
  const records = run.metrics;
  const bySteps = new Map<number, MetricsRecord>();
  const curves = new Map<string, Map<number, number>>();
  let baseline: EvalPoint | undefined;
  let marked: EvalPoint | undefined; // the record the trainer marks `final: 1`
  let latest: EvalPoint | undefined; // else the last evaluation after step 0 (a run that stopped before its end)
  for (const r of records) {
    const step = num(r.step);
    if (step === undefined) continue;
    if (num(r.loss) !== undefined) bySteps.set(step, r);
    const ev = evalsOf(r);
    if (ev.size === 0) continue;
    const isFinal = r.final === 1 || r.final === true;
    // The final record scores the best checkpoint: its figures belong at `best_step` (where the periodic evaluation
    // of the same weights usually sits already), not at the last step, which never had them.
    const best = isFinal ? num(r.best_step) : undefined;
    const at = best ?? step;
    for (const [k, v] of ev) {
      if (!curves.has(k)) curves.set(k, new Map());
      const curve = curves.get(k)!;
      if (best === undefined || !curve.has(at)) curve.set(at, v);
    }
    if (step === 0) baseline ??= { step, values: ev };
    else if (isFinal) marked = { step, values: ev };
    else latest = { step, values: ev };
  }
  const final = marked ?? latest;
  const steps = [...bySteps.keys()].sort((a, b) => a - b).map((s) => bySteps.get(s)!);
  const keys = [...curves.keys()];
  const evalKeys = [...keys.filter((k) => k.startsWith('eval_')), ...keys.filter((k) => k.startsWith('val_'))];
  const evalCurves = new Map(evalKeys.map((k) => [k, [...curves.get(k)!].sort((a, b) => a[0] - b[0])]));

  const times = records.map((r) => (typeof r.time === 'string' ? Date.parse(r.time) : NaN)).filter(Number.isFinite);
  const tokens = steps.reduce((s, r) => s + (num(r.tokens) ?? 0), 0);
  const lastStep = steps.length ? num(steps[steps.length - 1]!.step) : final?.step;
  const predictedPeakMb = lastOf(records, 'predicted_peak_mb') ?? (run.plan ? run.plan.totalBytes / 2 ** 20 : undefined);
  const measuredPeakMb = lastOf(records, 'peak_rss_mb');
  const stopped = records.some((r) => r.stopped_early === 1 || r.stopped_early === true);
  return {
    steps,
    evalKeys,
    evalCurves,
    baseline,
    final,
    bestStep: lastOf(records, 'best_step'),
    stoppedEarly: stopped,
    lastStep,
    totalSteps: lastOf(records, 'total_steps'),
    tokens: steps.some((r) => num(r.tokens) !== undefined) ? tokens : undefined,
    wallMs: times.length >= 2 ? times[times.length - 1]! - times[0]! : undefined,
    predictedPeakMb,
    measuredPeakMb,
    peakErrorPct:
      predictedPeakMb !== undefined && measuredPeakMb !== undefined && measuredPeakMb > 0 ? (100 * (predictedPeakMb - measuredPeakMb)) / measuredPeakMb : undefined,
  };
}
