/**
 * Metrics as JSON Lines: one JSON object per line, appended as training goes.
 *
 * Each write goes straight to the file descriptor (no user-space buffer), so a crash loses nothing already written;
 * `fsync: true` also survives power loss, at a cost per write. A resumed run appends to the same file; if the last
 * run died mid-line, that partial line is cut off first so the file stays valid.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** One metrics line. `time` (ISO 8601) is added when absent. */
export type MetricsRecord = Record<string, unknown>;

/** An open metrics file; see {@link openMetrics}. */
export interface MetricsWriter {
  /** Appends one record as a line (adding `time` if absent). Throws after `close`. */
  write(record: MetricsRecord): void;
  /** Closes the file. Later calls do nothing. */
  close(): void;
  /** The file's path. */
  readonly path: string;
}

/** Options of {@link openMetrics}. */
export interface OpenMetricsOptions {
  /** fsync after each write (durable across power loss, slower). Default false. */
  fsync?: boolean;
}

/** Cuts a trailing partial line (no final newline) left by a crash, so appended records start on a fresh line. */
function dropPartialTail(fd: number): void {
  const size = fstatSync(fd).size;
  if (size === 0) return;
  const chunk = Buffer.alloc(Math.min(size, 1 << 16));
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - chunk.length);
    const n = readSync(fd, chunk, 0, end - start, start);
    const nl = chunk.subarray(0, n).lastIndexOf(0x0a);
    if (nl >= 0) {
      if (start + nl + 1 !== size) ftruncateSync(fd, start + nl + 1);
      return;
    }
    end = start;
  }
  ftruncateSync(fd, 0);
}

/** JSON with bigints as numbers (step counters are sometimes bigint); NaN and Infinity become null as usual. */
function stringify(record: MetricsRecord): string {
  return JSON.stringify(record, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v));
}

/**
 * Opens (creating parent folders and the file as needed) a JSONL metrics file for appending.
 *
 *   const m = openMetrics('runs/a/metrics.jsonl');
 *   m.write({ step, loss, lr });
 *   m.close();
 */
export function openMetrics(path: string, opts: OpenMetricsOptions = {}): MetricsWriter {
  mkdirSync(dirname(path), { recursive: true });
  let fd: number | undefined = openSync(path, 'a+');
  try {
    dropPartialTail(fd);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return {
    path,
    write(record) {
      if (fd === undefined) throw new Error(`metrics file ${path} is closed`);
      const rec = 'time' in record ? record : { time: new Date().toISOString(), ...record };
      writeSync(fd, `${stringify(rec)}\n`);
      if (opts.fsync) fsyncSync(fd);
    },
    close() {
      if (fd === undefined) return;
      closeSync(fd);
      fd = undefined;
    },
  };
}

/**
 * Reads every record of a JSONL metrics file, in order. A missing file gives `[]` (nothing logged yet); a trailing
 * line without its newline that does not parse (a crash mid-write) is skipped; blank lines are ignored. Any other
 * line that is not a JSON object throws, naming the line.
 */
export function readMetrics(path: string): MetricsRecord[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const out: MetricsRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const last = i === lines.length - 1; // no newline after it: possibly cut short
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      if (last) break;
      throw new Error(`${path}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      if (last) break;
      throw new Error(`${path}:${i + 1}: expected a JSON object per line`);
    }
    out.push(value as MetricsRecord);
  }
  return out;
}

/** The finite numbers of `field` in `records`, as `[x, y]` points with `x` taken from `xField` (default `step`). */
export function metricPoints(records: readonly MetricsRecord[], field: string, xField = 'step'): [number, number][] {
  const pts: [number, number][] = [];
  records.forEach((r, i) => {
    const y = r[field];
    const xv = r[xField];
    const x = typeof xv === 'number' ? xv : i;
    if (typeof y === 'number' && Number.isFinite(y) && Number.isFinite(x)) pts.push([x, y]);
  });
  return pts;
}
