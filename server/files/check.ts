/**
 * Is this JSONL file one the trainer will read? Checked with core/data's own reader and record schemas
 * (`readJsonl`, `detectFormat`, `normalizeRecord`), so the service cannot accept a file the trainer refuses or the
 * other way round, with one difference: the trainer skips up to 1% malformed records (`maxBadFraction`), an upload
 * must have none, as OpenAI's files must not, so a client learns of every bad line before paying for a job.
 *
 * As in `loadDataset`, one format holds for the whole file: it is detected from the first record whose keys name
 * one, then every line is validated as that format (a `{"text"}` line in a chat file is an error, as in training).
 * Two passes over the file, so memory stays at one line whatever the file's size.
 */
import { readJsonl } from '../../core/data/json-stream.ts';
import type { DataFormat } from '../../core/data/options.ts';
import { PROBLEMS_LISTED } from '../../core/data/problems.ts';
import { detectFormat, normalizeRecord } from '../../core/data/records.ts';

/** Records looked at to detect the format: the DETECT_WINDOW of core/data/load.ts (not exported there). */
const DETECT_WINDOW = 100;
/** A reason longer than this is cut: status_details is a summary, not a dump of the record. */
const REASON_CHARS = 300;

const FORMATS_HINT =
  'expected one JSON object per line with "messages" (chat), "prompt" + "completion", "text", ' +
  '"instruction" + "output" (Alpaca) or "conversations" (ShareGPT)';

export interface LineProblem {
  /** 1-based line of the file. */
  readonly line: number;
  readonly reason: string;
}

export interface CheckResult {
  readonly format: DataFormat | undefined;
  /** Non-blank lines. */
  readonly lines: number;
  /** Malformed lines, counted; only the first PROBLEMS_LISTED are kept in `problems`. */
  readonly bad: number;
  readonly problems: readonly LineProblem[];
}

/** The format of the file: the first of its first DETECT_WINDOW parsed records that names one. */
async function detectFileFormat(path: string): Promise<DataFormat | undefined> {
  let seen = 0;
  for await (const item of readJsonl(path)) {
    if (!('value' in item)) continue;
    const f = detectFormat(item.value);
    if (f !== undefined || ++seen >= DETECT_WINDOW) return f;
  }
  return undefined;
}

/**
 * OpenAI's per-message `weight` (0: do not train on this assistant turn, 1: do): core/data has no opinion on it
 * (its schema drops unknown keys), so this is the one rule checked here, and only its values.
 */
function weightProblem(value: unknown): string | undefined {
  const messages = (value as { messages?: unknown }).messages;
  if (!Array.isArray(messages)) return undefined;
  for (const [i, m] of messages.entries()) {
    if (typeof m !== 'object' || m === null || !('weight' in m)) continue;
    const w = (m as { weight: unknown }).weight;
    if (w !== 0 && w !== 1) return `field "messages.${i}.weight": must be 0 or 1, got ${JSON.stringify(w)}`;
  }
  return undefined;
}

function keysOf(value: unknown): string {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? Object.keys(value).slice(0, 8).join(', ') || 'none' : 'none';
}

/** Why one parsed line is not a record of `format` (undefined: it is one). */
function lineProblem(format: DataFormat | undefined, value: unknown, line: number, index: number): string | undefined {
  if (format === undefined) {
    // No format found: a non-object says so (core/data's wording), an object gets the list of what is read.
    const r = typeof value === 'object' && value !== null && !Array.isArray(value) ? undefined : normalizeRecord('text', value, { file: '', line, index });
    return typeof r === 'string' ? r : `no known record format (keys: ${keysOf(value)}); ${FORMATS_HINT}`;
  }
  const r = normalizeRecord(format, value, { file: '', line, index });
  if (typeof r === 'string') return `${format} record: ${r}`;
  return format === 'openai' ? weightProblem(value) : undefined;
}

/** Every line of the file checked; reads it twice (format, then lines), never whole. */
export async function checkTrainingFile(path: string): Promise<CheckResult> {
  const format = await detectFileFormat(path);
  const problems: LineProblem[] = [];
  let lines = 0;
  let bad = 0;
  for await (const item of readJsonl(path)) {
    lines++;
    const reason = 'error' in item ? item.error : lineProblem(format, item.value, item.line, item.index);
    if (reason === undefined) continue;
    bad++;
    if (problems.length < PROBLEMS_LISTED) problems.push({ line: item.line, reason: reason.length > REASON_CHARS ? `${reason.slice(0, REASON_CHARS)}…` : reason });
  }
  return { format, lines, bad, problems };
}

/** The file's `status_details` when it fails the check; null when it passes. */
export function describeProblems(r: CheckResult): string | null {
  if (r.lines === 0) return `the file is empty: ${FORMATS_HINT}`;
  if (r.bad === 0) return null;
  const listed = r.problems.map((p) => `line ${p.line}: ${p.reason}`).join('; ');
  const more = r.bad > r.problems.length ? `; ... and ${r.bad - r.problems.length} more` : '';
  const what = r.bad === r.lines ? `all ${r.lines} lines are invalid` : `${r.bad} of ${r.lines} lines are invalid`;
  return `${what}${r.format ? ` (records read as ${r.format}, detected from the file's first records)` : ''}: ${listed}${more}`;
}
