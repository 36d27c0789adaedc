/**
 * A training run's report as one self-contained HTML file: summary (baseline against final evaluation), training
 * curves, the memory plan against the measured peak, the config and the generations before and after training.
 *
 *   writeRunReport('runs/sst2-lora');                                  // runs/sst2-lora/report.html
 *   writeComparisonReport(['runs/a', 'runs/b'], 'compare.html');       // both runs overlaid
 *
 * The parts live in ./html/: reading a run folder (data.ts), deriving its figures (summary.ts), the charts
 * (charts.ts, plan-chart.ts), the text sections (sections.ts) and the page (page.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { readRunReport } from './html/data.ts';
import { renderReport } from './html/page.ts';

export { readRunReport, type JsonValue, type RunPlan, type RunPlanItem, type RunReportData, type RunSample, type RunSamples } from './html/data.ts';
export { renderReport } from './html/page.ts';

/** Writes `html` to `out`, creating its folder; returns the absolute path. */
function write(out: string, html: string): string {
  const path = resolve(out);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, html);
  return path;
}

/** Writes the report of one run (default `<runDir>/report.html`) and returns the written path. */
export function writeRunReport(runDir: string, out: string = join(runDir, 'report.html')): string {
  return write(out, renderReport([readRunReport(runDir)]));
}

/** Writes one report overlaying several runs to `out` and returns the written path. */
export function writeComparisonReport(runDirs: readonly string[], out: string): string {
  if (runDirs.length === 0) throw new Error('writeComparisonReport: no run folders given');
  return write(out, renderReport(runDirs.map((d) => readRunReport(d))));
}
