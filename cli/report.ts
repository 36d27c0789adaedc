/**
 * `tuneforge report RUN [RUN...] [--out FILE]`: a run folder's self-contained report.html (curves, memory plan vs
 * measured, config, generations). One run writes `RUN/report.html` unless `--out` says otherwise; several runs are
 * overlaid in one report at `--out` (default `./report.html`).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeComparisonReport, writeRunReport } from '../core/report/index.ts';

export interface ReportCommandOptions {
  /** Run folders, as the user named them (error messages repeat them so). */
  runs: readonly string[];
  out?: string;
  /** Where progress lines go. Default stderr, so stdout holds only the written path. */
  log?: (line: string) => void;
}

/** Refuses anything but a run folder before reading it: a typo should not produce an empty report. */
function checkRunFolder(path: string): void {
  if (!existsSync(path) || !statSync(path).isDirectory()) throw new Error(`${path} is not a folder`);
  if (!existsSync(join(path, 'metrics.jsonl'))) throw new Error(`${path} is not a run folder: no metrics.jsonl`);
}

/** Writes the report and returns its path (also printed on stdout). */
export function reportCommand(o: ReportCommandOptions): string {
  const log = o.log ?? ((line: string) => console.error(line));
  if (o.runs.length === 0) throw new Error('no run folder given');
  for (const run of o.runs) checkRunFolder(run);
  let path: string;
  if (o.runs.length === 1) path = writeRunReport(o.runs[0]!, o.out);
  else {
    if (o.out === undefined) log(`no --out given: writing the comparison of ${o.runs.length} runs to ./report.html`);
    path = writeComparisonReport(o.runs, o.out ?? 'report.html');
  }
  console.log(path);
  return path;
}
