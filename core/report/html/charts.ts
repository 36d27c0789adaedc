/**
 * The training-curve charts of a report, for one run or overlaid for several (one colour per run, the legend naming
 * the runs). Each chart comes back as an inline `<svg data-chart="<id>">`; a chart without data is still drawn, with
 * the chart helpers' "no data" note, so the page always has the same charts in the same places.
 */
import { lineChartSvg, type LineSeries } from '../chart.ts';
import { lossChartSvg } from '../loss-chart.ts';
import { metricPoints } from '../metrics.ts';
import { ema } from '../smooth.ts';
import { PALETTE, escapeXml } from '../svg.ts';
import type { RunReportData } from './data.ts';
import { lastOf, type RunSummary } from './summary.ts';

/** A run with its derived figures, as the charts need both. */
export interface ChartRun {
  run: RunReportData;
  summary: RunSummary;
}

/** One chart of the page. */
export interface Chart {
  /** The `data-chart` id: `loss`, `eval`, `lr`, `grad_norm`, `throughput`, `memory` or `plan`. */
  id: string;
  svg: string;
}

/**
 * Makes a standalone chart SVG an inline element of the page: names it for tests and screen readers, and drops the
 * XML namespace (implied in HTML), which leaves the page without a single URL.
 */
export function inlineChart(svg: string, id: string, label: string, extra: Record<string, string> = {}): string {
  const attrs = Object.entries({ 'data-chart': id, role: 'img', 'aria-label': label, ...extra })
    .map(([k, v]) => ` ${k}="${escapeXml(v)}"`)
    .join('');
  return svg.replace(/^<svg xmlns="[^"]*"/, `<svg${attrs}`);
}

const colorOf = (i: number): string => PALETTE[i % PALETTE.length]!;

/** EMA weight for a noisy curve of `n` points: a span of about 1/15 of the run (as the loss chart), none when short. */
const alphaFor = (n: number): number => (n < 20 ? 1 : Math.min(1, Math.max(0.01, 30 / n)));

/** A noisy curve as a faint raw line under its moving average, both in the run's colour; the legend shows the average. */
function smoothed(name: string, points: [number, number][], color: string): LineSeries[] {
  const alpha = alphaFor(points.length);
  if (alpha >= 1) return [{ name, points, color, strokeWidth: 2 }];
  return [
    { name: `${name} (raw)`, points, color, strokeWidth: 1, opacity: 0.25, legend: false },
    { name, points: ema(points, alpha), color, strokeWidth: 2.5 },
  ];
}

/** Training loss: the loss chart of core/report for one run; smoothed curves, one per run, for several. */
function lossChart(runs: readonly ChartRun[]): string {
  if (runs.length === 1) {
    // Loss from the per-step records and eval loss from the curves, so neither is drawn twice after a resume.
    const { steps, evalCurves } = runs[0]!.summary;
    const records = [...steps.map((r) => ({ step: r.step, loss: r.loss })), ...(evalCurves.get('eval_loss') ?? []).map(([step, v]) => ({ step, eval_loss: v }))];
    return lossChartSvg(records, { title: 'training loss' });
  }
  const series = runs.flatMap((r, i) => smoothed(r.run.name, metricPoints(r.summary.steps, 'loss'), colorOf(i))).filter((s) => s.points.length > 0);
  return lineChartSvg({ title: 'training loss (smoothed over the raw curve)', xLabel: 'step', yLabel: 'loss', series });
}

/** A metric's name without its split prefix: `eval_accuracy` and `val_accuracy` share a chart (and axis) `accuracy`. */
const metricOf = (key: string): string => key.replace(/^(eval|val)_/, '');

/**
 * Evaluation curves, one chart per metric so accuracies and losses each get a fitting axis; the dev/test curve solid,
 * the validation curve dashed. The baseline at step 0 is the first point of each curve.
 */
function evalCharts(runs: readonly ChartRun[]): string[] {
  const keys = [...new Set(runs.flatMap((r) => r.summary.evalKeys))];
  const metrics = [...new Set(keys.map(metricOf))];
  if (metrics.length === 0) return [inlineChart(lineChartSvg({ title: 'evaluation', xLabel: 'step', series: [] }), 'eval', 'evaluation')];
  return metrics.map((metric) => {
    const series: LineSeries[] = [];
    const ofMetric = keys.filter((k) => metricOf(k) === metric);
    runs.forEach((r, i) => {
      for (const key of ofMetric) {
        const points = r.summary.evalCurves.get(key) ?? [];
        if (points.length === 0) continue;
        const name = runs.length === 1 ? key : ofMetric.length === 1 ? r.run.name : `${r.run.name} ${key.split('_')[0]}`;
        // One run: a colour per key; several: a colour per run, the split told apart by the dash.
        const color = runs.length === 1 ? colorOf(keys.indexOf(key)) : colorOf(i);
        series.push({ name, points, color, dashed: runs.length > 1 && key.startsWith('val_'), markers: points.length <= 60 });
      }
    });
    const svg = lineChartSvg({ title: `evaluation: ${metric}`, xLabel: 'step', yLabel: metric, series });
    return inlineChart(svg, 'eval', `evaluation ${metric}`, { 'data-metric': metric });
  });
}

/** A per-step field, one plain line per run. */
function fieldChart(runs: readonly ChartRun[], field: string, title: string, yLabel: string, logWhenWide = false): string {
  const series = runs
    .map((r, i) => ({ name: runs.length === 1 ? field : r.run.name, points: metricPoints(r.summary.steps, field), color: colorOf(i), strokeWidth: 1.5 }))
    .filter((s) => s.points.length > 0); // a run that did not record the field gets no legend entry
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  // Gradient norms spike by orders of magnitude; a log axis keeps the ordinary steps readable.
  const logY = logWhenWide && ys.length > 0 && Math.min(...ys) > 0 && Math.max(...ys) / Math.min(...ys) > 50;
  return lineChartSvg({ title, xLabel: 'step', yLabel, series, logY });
}

/** Throughput: tokens per second, noisy per step, so smoothed like the loss. */
function throughputChart(runs: readonly ChartRun[]): string {
  const series = runs.flatMap((r, i) => smoothed(runs.length === 1 ? 'tok/s' : r.run.name, metricPoints(r.summary.steps, 'tok_s'), colorOf(i)));
  return lineChartSvg({ title: 'throughput', xLabel: 'step', yLabel: 'tokens/s', series: series.filter((s) => s.points.length > 0) });
}

/**
 * Memory: resident set after each step (faint), the peak so far (bold), and the planner's predicted peak as a dashed
 * horizontal line across the same steps, so the gap between prediction and measurement is read off directly.
 */
function memoryChart(runs: readonly ChartRun[]): string {
  const one = runs.length === 1;
  const series: LineSeries[] = [];
  runs.forEach((r, i) => {
    const rss = metricPoints(r.summary.steps, 'rss_mb');
    const peak = metricPoints(r.summary.steps, 'peak_rss_mb');
    const xs = [...rss, ...peak].map((p) => p[0]);
    const predicted = lastOf(r.summary.steps, 'predicted_peak_mb') ?? r.summary.predictedPeakMb;
    const name = (what: string) => (one ? what : `${r.run.name} ${what}`);
    series.push({ name: name('rss'), points: rss, color: one ? colorOf(0) : colorOf(i), strokeWidth: 1, opacity: one ? 1 : 0.35, legend: one });
    series.push({ name: one ? 'peak rss' : r.run.name, points: peak, color: one ? colorOf(1) : colorOf(i), strokeWidth: 2.5 });
    if (predicted !== undefined && xs.length > 0) {
      const line: [number, number][] = [[Math.min(...xs), predicted], [Math.max(...xs), predicted]];
      series.push({ name: name('predicted peak'), points: line, color: one ? colorOf(2) : colorOf(i), strokeWidth: 2, dashed: true, markers: false });
    }
  });
  return lineChartSvg({ title: 'memory', xLabel: 'step', yLabel: 'MiB', series: series.filter((s) => s.points.length > 0) });
}

/** Every training-curve chart of the page, in page order (the plan chart is drawn by plan-chart.ts). */
export function curveCharts(runs: readonly ChartRun[]): Chart[] {
  return [
    { id: 'loss', svg: inlineChart(lossChart(runs), 'loss', 'training loss') },
    ...evalCharts(runs).map((svg) => ({ id: 'eval', svg })),
    { id: 'lr', svg: inlineChart(fieldChart(runs, 'lr', 'learning rate', 'lr'), 'lr', 'learning rate') },
    { id: 'grad_norm', svg: inlineChart(fieldChart(runs, 'grad_norm', 'gradient norm', '‖g‖', true), 'grad_norm', 'gradient norm') },
    { id: 'throughput', svg: inlineChart(throughputChart(runs), 'throughput', 'throughput') },
    { id: 'memory', svg: inlineChart(memoryChart(runs), 'memory', 'memory') },
  ];
}
