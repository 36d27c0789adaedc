/**
 * Model selection over a run's evaluations: which evaluation was best by `checkpoint.best.metric`, and whether early
 * stopping's patience has run out. Its state goes into every checkpoint, so a resumed run selects and stops exactly
 * as an uninterrupted one would.
 */
import type { TrainConfig } from './config.ts';

export interface SelectionState {
  /** The best evaluation so far (its step and every metric it reported), or null before the first. */
  best: { step: number; value: number; metrics: Record<string, number> } | null;
  /** Evaluations since the best one (early stopping's count). */
  sinceBest: number;
  /** Early stopping ended the run. */
  stopped: boolean;
  /** Step of the latest evaluation (a finished run resumed does not evaluate its last step again). */
  lastEvalStep: number | null;
}

/** max for accuracies and the like, min for losses and perplexities. */
export function defaultMode(metric: string): 'max' | 'min' {
  return /_(loss|ppl)$/.test(metric) ? 'min' : 'max';
}

export class Selection {
  private s: SelectionState = { best: null, sinceBest: 0, stopped: false, lastEvalStep: null };
  readonly metric: string | undefined;
  private readonly mode: 'max' | 'min';
  private readonly patience: number | undefined;
  private readonly minDelta: number;

  constructor(cfg: Pick<TrainConfig, 'checkpoint' | 'eval'>) {
    this.metric = cfg.checkpoint.best?.metric;
    this.mode = cfg.checkpoint.best?.mode ?? defaultMode(this.metric ?? '');
    this.patience = cfg.eval.earlyStopping?.patience;
    this.minDelta = cfg.eval.earlyStopping?.minDelta ?? 0;
  }

  /** Problems of the config against the metrics the evaluation will report (checked before training starts). */
  static problems(cfg: Pick<TrainConfig, 'checkpoint' | 'eval'>, reported: readonly string[]): string[] {
    const metric = cfg.checkpoint.best?.metric;
    const out: string[] = [];
    if (metric !== undefined && !reported.includes(metric)) {
      const have = reported.length ? `the evaluation reports ${reported.join(', ')}` : 'the run has no evaluation data';
      const hint = metric.startsWith('val_') ? ': hold out a validation split with data.validationFraction (e.g. 0.01)' : '';
      out.push(`checkpoint.best.metric is '${metric}', but ${have}${hint}`);
    }
    if (cfg.eval.earlyStopping && metric === undefined) out.push('eval.earlyStopping needs checkpoint.best (the metric it watches), e.g. { metric: "val_loss" }');
    if (cfg.eval.earlyStopping && cfg.eval.every === 0) out.push('eval.earlyStopping needs eval.every > 0 (evaluations to watch during the run)');
    return out;
  }

  get state(): SelectionState {
    return structuredClone(this.s);
  }

  restore(state: SelectionState | undefined): void {
    if (state) this.s = structuredClone(state);
  }

  get best(): SelectionState['best'] {
    return this.s.best;
  }

  get stopped(): boolean {
    return this.s.stopped;
  }

  get lastEvalStep(): number | null {
    return this.s.lastEvalStep;
  }

  /**
   * Takes an evaluation's metrics. `improved`: it is the new best (more than minDelta better), and its weights
   * should be kept; `stop`: early stopping's patience has run out.
   */
  observe(step: number, metrics: Record<string, number>): { improved: boolean; stop: boolean } {
    this.s.lastEvalStep = step;
    if (this.metric === undefined) return { improved: false, stop: false };
    const value = metrics[this.metric];
    if (value === undefined || !Number.isFinite(value)) return { improved: false, stop: false };
    const best = this.s.best;
    const gain = best === null ? Infinity : this.mode === 'max' ? value - best.value : best.value - value;
    const improved = best === null || gain > this.minDelta;
    if (improved) {
      this.s.best = { step, value, metrics: { ...metrics } };
      this.s.sinceBest = 0;
    } else this.s.sinceBest++;
    const stop = this.patience !== undefined && this.s.sinceBest >= this.patience;
    if (stop) this.s.stopped = true;
    return { improved, stop };
  }
}
