/**
 * Reporting for long runs: a progress line, a JSONL metrics log, and SVG charts.
 *
 *   const metrics = openMetrics(`${runDir}/metrics.jsonl`);
 *   const bar = createProgress({ total: steps, label: 'train' });
 *   for (let step = 1; step <= steps; step++) {
 *     ...
 *     metrics.write({ step, loss, lr, tok_per_s });
 *     bar.update(step, { loss, lr, 'tok/s': tokPerS });
 *   }
 *   bar.finish();
 *   metrics.close();
 *   writeLossChart(`${runDir}/metrics.jsonl`, `${runDir}/loss.svg`);
 */

/** Progress bar on a terminal, throttled plain lines elsewhere. */
export { createProgress, type Progress, type ProgressFields, type ProgressOptions, type ProgressStream } from './progress.ts';
/** JSONL metrics: append-only writer, crash-tolerant reader, field extraction as chart points. */
export { metricPoints, openMetrics, readMetrics, type MetricsRecord, type MetricsWriter, type OpenMetricsOptions } from './metrics.ts';
/** Multi-series line charts as SVG. */
export { lineChartSvg, type LineChartOptions, type LineSeries } from './chart.ts';
/** Grouped bar charts as SVG (e.g. a statistic per layer, one series per technique). */
export { barChartSvg, type BarChartOptions, type BarSeries } from './bar-chart.ts';
/** The end-of-run loss chart (raw + smoothed train loss, eval loss). */
export { lossChartSvg, writeLossChart, type LossChartOptions } from './loss-chart.ts';
/** Exponential moving average of a curve. */
export { ema } from './smooth.ts';
/** Nice axis ticks (1-2-5 steps, decades) and their labels. */
export { fitDomain, formatTick, logTicks, niceStep, niceTicks, type Ticks } from './ticks.ts';
/** Number and duration formatting used by the progress line. */
export { formatCount, formatDuration, formatExp, formatField, formatNumber } from './format.ts';
/** The Okabe–Ito colour-blind-safe palette the charts use. */
export { PALETTE, escapeXml } from './svg.ts';
/** A run's self-contained HTML report (curves, memory plan vs measured, config, generations), one run or several. */
export {
  readRunReport, renderReport, writeComparisonReport, writeRunReport,
  type JsonValue, type RunPlan, type RunPlanItem, type RunReportData, type RunSample, type RunSamples,
} from './html.ts';
