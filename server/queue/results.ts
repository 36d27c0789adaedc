/**
 * A finished job's result files, stored like uploads (purpose `fine-tune-results`) so clients download them with
 * `files.content`: the step metrics as CSV (OpenAI's result file), the adapter folder and the merged model folder as
 * tar archives (when the run exported them).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { readMetrics, type MetricsRecord } from '../../core/report/index.ts';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { filePath } from '../files/paths.ts';
import { newFileId, nowSeconds } from '../ids.ts';
import type { Service } from '../service.ts';
import { tarFolder } from './tar.ts';

const CSV_COLUMNS = ['step', 'train_loss', 'train_accuracy', 'valid_loss', 'valid_mean_token_accuracy', 'lr', 'tokens', 'tok_s'] as const;

/** A run's metrics records → CSV with OpenAI's columns first (empty where the run has no such figure). */
export function metricsCsv(records: readonly MetricsRecord[]): string {
  const rows = records as readonly Record<string, number>[];
  const byStep = new Map<number, Record<string, number>>();
  for (const r of rows) byStep.set(r.step!, { ...byStep.get(r.step!), ...r });
  const lines = [CSV_COLUMNS.join(',')];
  for (const [step, r] of [...byStep].sort((a, b) => a[0] - b[0])) {
    const values: Record<(typeof CSV_COLUMNS)[number], number | undefined> = {
      step, train_loss: r.loss, train_accuracy: undefined, valid_loss: r.eval_loss, valid_mean_token_accuracy: r.eval_accuracy, lr: r.lr, tokens: r.tokens, tok_s: r.tok_s,
    };
    lines.push(CSV_COLUMNS.map((c) => (values[c] === undefined || !Number.isFinite(values[c]) ? '' : String(values[c]))).join(','));
  }
  return `${lines.join('\n')}\n`;
}

export async function storeResultFiles(svc: Service, jobId: string, runDir: string): Promise<string[]> {
  const ids: string[] = [];
  const add = async (filename: string, write: (path: string) => Promise<void>) => {
    const id = newFileId();
    const path = filePath(svc, id);
    await write(path);
    await svc.store.createFile({ id, created_at: nowSeconds(), bytes: (await stat(path)).size, filename, purpose: 'fine-tune-results', status: 'processed', status_details: null });
    ids.push(id);
  };
  const metrics = join(runDir, 'metrics.jsonl');
  if (existsSync(metrics)) await add(`${jobId}-metrics.csv`, async (p) => writeFileSync(p, metricsCsv(readMetrics(metrics))));
  for (const [folder, name] of [['adapter', 'adapter'], ['model', 'model']] as const) {
    const dir = join(runDir, 'export', folder);
    if (existsSync(dir)) await add(`${jobId}-${name}.tar`, async (p) => void (await tarFolder(dir, name, p)));
  }
  return ids;
}
