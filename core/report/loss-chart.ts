/**
 * The training-curve chart saved at the end of a run: raw loss faint, its moving average bold in the same colour,
 * and evaluation loss as a second series with dots.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { lineChartSvg, type LineSeries } from './chart.ts';
import { metricPoints, readMetrics, type MetricsRecord } from './metrics.ts';
import { ema } from './smooth.ts';
import { PALETTE } from './svg.ts';

/** Options of {@link lossChartSvg}; field names refer to keys of the metrics records. */
export interface LossChartOptions {
  /** Default `training loss`. */
  title?: string;
  /** x field. Default `step` (records without it use their index). */
  x?: string;
  /** Training loss field. Default `loss`. */
  loss?: string;
  /** Evaluation loss field. Default `eval_loss`. */
  evalLoss?: string;
  /** EMA weight of the newest point; default picks one from the number of points (about 1/15 of the run). */
  alpha?: number;
  width?: number;
  height?: number;
  logY?: boolean;
}

/** Default smoothing: an EMA span of about 1/15 of the curve, none for short curves. */
function autoAlpha(n: number): number {
  return n < 20 ? 1 : Math.min(1, Math.max(0.01, 30 / n));
}

/** Renders the loss curves of metrics records (as written by `openMetrics`) to an SVG string. */
export function lossChartSvg(records: readonly MetricsRecord[], opts: LossChartOptions = {}): string {
  const xField = opts.x ?? 'step';
  const raw = metricPoints(records, opts.loss ?? 'loss', xField);
  const evalPts = metricPoints(records, opts.evalLoss ?? 'eval_loss', xField);
  const alpha = opts.alpha ?? autoAlpha(raw.length);
  const series: LineSeries[] = [];
  if (alpha < 1) {
    series.push({ name: 'train loss (raw)', points: raw, color: PALETTE[0], strokeWidth: 1, opacity: 0.3 });
    series.push({ name: 'train loss (smoothed)', points: ema(raw, alpha), color: PALETTE[0], strokeWidth: 2.5 });
  } else series.push({ name: 'train loss', points: raw, color: PALETTE[0], strokeWidth: 2 });
  if (evalPts.length > 0) series.push({ name: 'eval loss', points: evalPts, color: PALETTE[1], strokeWidth: 2, markers: evalPts.length <= 60 });
  return lineChartSvg({
    title: opts.title ?? 'training loss',
    xLabel: xField,
    yLabel: 'loss',
    series,
    width: opts.width,
    height: opts.height,
    logY: opts.logY,
  });
}

/** Reads a JSONL metrics file and writes its loss chart to `svgPath` (creating folders). */
export function writeLossChart(metricsPath: string, svgPath: string, opts: LossChartOptions = {}): void {
  const svg = lossChartSvg(readMetrics(metricsPath), opts);
  mkdirSync(dirname(svgPath), { recursive: true });
  writeFileSync(svgPath, svg);
}
