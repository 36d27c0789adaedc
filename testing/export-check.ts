/**
 * Export round trips: after a short run, (a) the merged model folder alone (no plugins) gives the logits of the base
 * model with the trained plugins, when every plugin is mergeable; (b) plugins rebuilt from the exported artifacts by
 * the plugin's own reader give them too.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Plugin } from '../core/index.ts';
import { train } from '../core/train/trainer.ts';
import { fullFinetune } from '../plugins/full/index.ts';
import { KitError } from './errors.ts';
import { kitLogits, maxRelDiff } from './logits.ts';
import { kitConfig, kitModel, quietLog, scratchDir, type KitModelOptions } from './run-model.ts';

export interface ExportCheckOptions extends KitModelOptions {
  plugins: () => Plugin[];
  /** The plugin's reader: plugins rebuilt from the run's `export/` folder (e.g. from `export/adapter`). */
  reload?: (exportDir: string) => Plugin[] | Promise<Plugin[]>;
  /** Largest relative logit difference accepted (default 1e-4: float32 rounding of the merged weights). */
  tolerance?: number;
  steps?: number;
}

export interface ExportCheckReport {
  exportDir: string;
  /** max |Δlogit| / max |logit| of the merged model against the trained plugins; absent when not mergeable. */
  merged?: number;
  /** The same for the reloaded plugins. */
  reloaded?: number;
}

export async function expectExportRoundTrip(o: ExportCheckOptions): Promise<ExportCheckReport> {
  const model = await kitModel(o);
  const cfg = kitConfig(model, join(scratchDir('export'), 'run'), { train: { steps: o.steps ?? 4 }, export: { merged: 'auto', adapters: true } });
  const run = await train({ config: cfg, plugins: o.plugins(), progress: { write: () => true, isTTY: false }, log: quietLog });
  const exportDir = join(cfg.output, 'export');
  const reference = await kitLogits(model, o.plugins(), run.trained);
  const tolerance = o.tolerance ?? 1e-4;
  const report: ExportCheckReport = { exportDir };
  if (existsSync(join(exportDir, 'model', 'model.safetensors'))) {
    report.merged = maxRelDiff(await kitLogits(join(exportDir, 'model'), [fullFinetune()]), reference);
    if (report.merged > tolerance) throw new KitError(`export check: the merged model's logits differ from the trained plugins' by ${report.merged.toExponential(2)} (relative; tolerance ${tolerance}): export:merge does not fold the plugin in exactly`);
  }
  if (o.reload) {
    report.reloaded = maxRelDiff(await kitLogits(model, await o.reload(exportDir)), reference);
    if (report.reloaded > tolerance) throw new KitError(`export check: plugins reloaded from ${exportDir} give logits ${report.reloaded.toExponential(2)} away from the trained ones (tolerance ${tolerance})`);
  }
  if (report.merged === undefined && report.reloaded === undefined) throw new KitError('export check: nothing to compare: the run wrote no merged model and no reload was given');
  return report;
}
