/**
 * The planner against a measured run: a short training run of the plugin in a process of its own (so the peak is
 * that run's), through the command line, with the plugins given as a JSON config gives them (a built-in's name, an
 * installed package's name or a module path, plus options). The run records its predicted and measured peaks.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readMetrics } from '../core/report/index.ts';
import { KitError } from './errors.ts';
import { kitModel, scratchDir, type KitModelOptions } from './run-model.ts';
import { writeTinyDataset } from './tiny-model.ts';

export interface PluginReference {
  /** A built-in name (`lora`), an installed package, or a path to a module whose default export is the factory. */
  name: string;
  options?: Record<string, unknown>;
}

export interface PlanCheckOptions extends KitModelOptions {
  plugins: PluginReference[];
  /** Largest |predicted − measured| / measured accepted (default 0.15). */
  tolerance?: number;
  steps?: number;
  batchSize?: number;
}

export interface PlanCheckReport {
  predictedMb: number;
  measuredMb: number;
  error: number;
}

const CLI = join(import.meta.dir, '..', 'cli', 'main.ts');

export async function expectPlanHolds(o: PlanCheckOptions): Promise<PlanCheckReport> {
  const model = await kitModel(o);
  const dir = scratchDir('plan');
  const config = {
    model, output: join(dir, 'run'), seed: 0,
    data: { train: writeTinyDataset(join(dir, 'data')), maxLength: 32 },
    train: { steps: o.steps ?? 3, batchSize: o.batchSize ?? 4 },
    eval: { baseline: false }, export: { merged: false, adapters: false },
    plugins: o.plugins.map((p) => ({ name: p.name, options: p.options ?? {} })),
  };
  const path = join(dir, 'config.json');
  writeFileSync(path, JSON.stringify(config, null, 2));
  const child = Bun.spawn([process.execPath, CLI, 'train', '--config', path], { stdout: 'pipe', stderr: 'pipe', cwd: dir });
  const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited, new Response(child.stdout).text()]);
  if (code !== 0) throw new KitError(`plan check: the run failed (exit ${code}):\n${stderr.trim().split('\n').slice(-8).join('\n')}`);
  const final = readMetrics(join(dir, 'run', 'metrics.jsonl')).find((r) => r.final === 1);
  if (!final || typeof final.predicted_peak_mb !== 'number' || typeof final.peak_rss_mb !== 'number') throw new KitError('plan check: the run wrote no final record with predicted_peak_mb and peak_rss_mb');
  const report = { predictedMb: final.predicted_peak_mb, measuredMb: final.peak_rss_mb, error: final.predicted_peak_mb / final.peak_rss_mb - 1 };
  const tolerance = o.tolerance ?? 0.15;
  if (Math.abs(report.error) > tolerance) {
    throw new KitError(`plan check: predicted ${report.predictedMb.toFixed(1)} MB, measured ${report.measuredMb.toFixed(1)} MB (${(100 * report.error).toFixed(1)}%, tolerance ±${(100 * tolerance).toFixed(0)}%): add the plugin's own memory to memory:plan`);
  }
  return report;
}
