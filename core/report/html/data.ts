/**
 * What a run report is made of, read from a run folder: `metrics.jsonl`, `plan.json`, `config.json` and
 * `samples.json`. Every file is optional (an old run, a crashed one, a trainer that does not write it yet); a file that
 * exists but cannot be read is noted in `problems` instead of failing the whole report.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { readMetrics, type MetricsRecord } from '../metrics.ts';

/** Any JSON value (the resolved config is shown as it was written, not interpreted). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** One component of the memory plan (`plan.json`'s `items`). */
export interface RunPlanItem {
  component: string;
  bytes: number;
  note?: string;
}

/** The memory plan the trainer wrote before the run started (`plan.json`). */
export interface RunPlan {
  model: string;
  parameters: number;
  trainableParameters: number;
  dims: { B: number; T: number };
  microBatchSize: number;
  accumulationSteps: number;
  checkpointing: boolean;
  items: RunPlanItem[];
  totalBytes: number;
}

/** One greedy generation: the prompt and what the model continued it with. */
export interface RunSample {
  prompt: string;
  completion: string;
}

/** Generations of the base model (`before`) and of the trained one (`after`) on the same prompts (`samples.json`). */
export interface RunSamples {
  before: RunSample[];
  after: RunSample[];
}

/** Everything a report shows about one run. Absent fields were not recorded. */
export interface RunReportData {
  /** The run folder's basename: the run's name in titles and legends. */
  name: string;
  /** The run folder, absolute. */
  dir: string;
  /** The records of `metrics.jsonl` in file order (`[]` when absent). */
  metrics: MetricsRecord[];
  plan?: RunPlan;
  config?: JsonValue;
  samples?: RunSamples;
  /** Files that exist but could not be read, each with the reason (shown in the report). */
  problems: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Checks `plan.json`'s shape; returns why it does not fit, or the plan. Unknown extra fields are ignored. */
function asPlan(v: unknown): RunPlan | string {
  if (!isObject(v)) return 'not a JSON object';
  if (!Array.isArray(v.items)) return 'no "items" list';
  const items: RunPlanItem[] = [];
  for (const it of v.items) {
    if (!isObject(it) || typeof it.component !== 'string' || !isNum(it.bytes)) return 'an item without "component" and "bytes"';
    items.push({ component: it.component, bytes: it.bytes, ...(typeof it.note === 'string' ? { note: it.note } : {}) });
  }
  const dims = isObject(v.dims) ? v.dims : {};
  const num = (x: unknown) => (isNum(x) ? x : NaN); // a missing figure shows as '-', it does not hide the plan
  return {
    model: typeof v.model === 'string' ? v.model : '',
    parameters: num(v.parameters),
    trainableParameters: num(v.trainableParameters),
    dims: { B: num(dims.B), T: num(dims.T) },
    microBatchSize: num(v.microBatchSize),
    accumulationSteps: num(v.accumulationSteps),
    checkpointing: v.checkpointing === true,
    items,
    totalBytes: isNum(v.totalBytes) ? v.totalBytes : items.reduce((s, i) => s + i.bytes, 0),
  };
}

/** Checks `samples.json`'s shape; entries that are not prompt/completion pairs are dropped. */
function asSamples(v: unknown): RunSamples | string {
  if (!isObject(v)) return 'not a JSON object';
  const list = (x: unknown): RunSample[] =>
    Array.isArray(x)
      ? x.filter((s): s is RunSample => isObject(s) && typeof s.prompt === 'string' && typeof s.completion === 'string').map((s) => ({ prompt: s.prompt, completion: s.completion }))
      : [];
  return { before: list(v.before), after: list(v.after) };
}

/**
 * Reads a run folder. Throws only when `runDir` is not a folder; missing files leave their field absent (metrics
 * `[]`), unreadable ones add a line to `problems`.
 */
export function readRunReport(runDir: string): RunReportData {
  const dir = resolve(runDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${runDir} is not a folder`);
  const data: RunReportData = { name: basename(dir), dir, metrics: [], problems: [] };

  try {
    data.metrics = readMetrics(join(dir, 'metrics.jsonl'));
  } catch (e) {
    data.problems.push(`metrics.jsonl: ${(e as Error).message}`);
  }

  // Parses one optional JSON file; undefined when absent or broken (then noted).
  const json = (file: string): unknown => {
    const path = join(dir, file);
    if (!existsSync(path)) return undefined;
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as unknown;
    } catch (e) {
      data.problems.push(`${file}: ${(e as Error).message}`);
      return undefined;
    }
  };
  const checked = <T>(file: string, v: unknown, check: (v: unknown) => T | string): T | undefined => {
    if (v === undefined) return undefined;
    const r = check(v);
    if (typeof r === 'string') {
      data.problems.push(`${file}: ${r}`);
      return undefined;
    }
    return r;
  };

  const plan = checked('plan.json', json('plan.json'), asPlan);
  if (plan) data.plan = plan;
  const config = json('config.json');
  if (config !== undefined) data.config = config as JsonValue; // JSON.parse only ever yields JSON values
  const samples = checked('samples.json', json('samples.json'), asSamples);
  if (samples) data.samples = samples;
  return data;
}
