/**
 * A progress reporter for long work (training steps, evaluation batches, downloads).
 *
 * On a terminal it redraws one line in place (`\r` + clear-to-end): label, bar, `step 120/600`, percentage, the
 * caller's fields, elapsed time and an ETA from an exponential moving average of the time per step. Elsewhere (CI,
 * pipes, files) it prints a plain line at most every `intervalMs` and one at the end, so logs stay readable.
 */
import { formatDuration, formatField } from './format.ts';

/** Where progress goes: a Node/Bun write stream (`process.stderr`) or anything with `write`. */
export interface ProgressStream {
  write(s: string): unknown;
  /** True for a terminal: enables the in-place bar. */
  isTTY?: boolean;
  /** Terminal width; the bar line is cut to fit so it never wraps. */
  columns?: number;
}

/** Fields shown after the counts, in insertion order: `{ loss: 0.41, lr: 1e-3, 'tok/s': 12345 }`. */
export type ProgressFields = Record<string, string | number>;

/** Options of {@link createProgress}. */
export interface ProgressOptions {
  /** Number of steps of the whole work; `done === total` is 100%. */
  total: number;
  /** Shown first on each line, e.g. `train` or `eval`. */
  label?: string;
  /** Default `process.stderr`. */
  stream?: ProgressStream;
  /** Non-TTY: least time between two plain lines. Default 10 000 ms. */
  intervalMs?: number;
  /** TTY: least time between two redraws. Default 100 ms. */
  redrawMs?: number;
  /** Overrides `stream.isTTY`. */
  tty?: boolean;
  /** Steps already done when created (a resumed run), so the rate counts only new steps. Default 0. */
  start?: number;
  /** Weight of the newest step time in the moving average, in (0, 1]. Default 0.1. */
  smoothing?: number;
  /** Bar width in characters. Default 24. */
  barWidth?: number;
  /** Clock in milliseconds, for tests. Default `Date.now`. */
  now?: () => number;
}

/** A live progress display; see {@link createProgress}. */
export interface Progress {
  /** Reports `done` steps finished (absolute, not a delta) and the current fields. */
  update(done: number, fields?: ProgressFields): void;
  /** Prints a message on its own line above the bar without breaking it. */
  log(line: string): void;
  /** Prints the final line (optionally with last fields) and ends the bar. Later calls do nothing. */
  finish(fields?: ProgressFields): void;
}

/** Creates a progress reporter; see the module comment for the two display modes. */
export function createProgress(opts: ProgressOptions): Progress {
  const stream: ProgressStream = opts.stream ?? process.stderr;
  const now = opts.now ?? Date.now;
  const tty = opts.tty ?? stream.isTTY === true;
  const intervalMs = opts.intervalMs ?? 10_000;
  const redrawMs = opts.redrawMs ?? 100;
  const alpha = Math.min(1, Math.max(1e-6, opts.smoothing ?? 0.1));
  const barWidth = Math.max(1, opts.barWidth ?? 24);
  const { total } = opts;
  const label = opts.label ?? '';

  const t0 = now();
  let done = opts.start ?? 0;
  let fields: ProgressFields = {};
  let lastDone = done;
  let lastT = t0;
  let msPerStep: number | undefined;
  let lastOut = tty ? -Infinity : t0;
  let drawn = false;
  let finished = false;

  const fieldText = () =>
    Object.entries(fields)
      .map(([k, v]) => `${k} ${formatField(k, v)}`)
      .join('  ');
  const pctText = () => (total > 0 ? `${((100 * Math.min(done, total)) / total).toFixed(1)}%` : '');
  const etaMs = () => (msPerStep === undefined || total <= 0 ? NaN : msPerStep * Math.max(0, total - done));

  function barLine(t: number, final: boolean): string {
    const frac = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
    const fill = Math.floor(frac * barWidth);
    const bar = `[${'█'.repeat(fill)}${'░'.repeat(barWidth - fill)}]`;
    const time = final ? formatDuration(t - t0) : `${formatDuration(t - t0)} eta ${formatDuration(etaMs())}`;
    const count = `step ${String(done).padStart(String(total).length)}/${total}`; // fixed width: no jitter
    const parts = [label, bar, count, pctText().padStart(6)].filter((p) => p !== '').join(' ');
    const f = fieldText();
    const line = `${parts}${f ? ` | ${f}` : ''} | ${time}`;
    const cols = stream.columns;
    return cols !== undefined && cols > 1 && line.length >= cols ? line.slice(0, cols - 1) : line;
  }

  function plainLine(t: number, final: boolean): string {
    const pct = pctText();
    const head = [label, final ? 'done' : '', `step ${done}/${total}`, pct ? `(${pct})` : ''].filter((p) => p !== '');
    const f = fieldText();
    const time = final ? `elapsed ${formatDuration(t - t0)}` : `elapsed ${formatDuration(t - t0)} eta ${formatDuration(etaMs())}`;
    return `${head.join(' ')}${f ? `  ${f}` : ''}  ${time}\n`;
  }

  const draw = (t: number, final: boolean) => {
    stream.write(`\r${barLine(t, final)}\x1b[K`);
    drawn = true;
  };

  return {
    update(n, newFields) {
      if (finished) return;
      const t = now();
      if (n > lastDone) {
        const perStep = (t - lastT) / (n - lastDone);
        // One EMA step per finished step, so sparse updates weigh the same as frequent ones.
        const a = 1 - Math.pow(1 - alpha, n - lastDone);
        msPerStep = msPerStep === undefined ? perStep : msPerStep + a * (perStep - msPerStep);
        lastDone = n;
        lastT = t;
      } else if (n < lastDone) {
        lastDone = n;
        lastT = t;
      }
      done = n;
      if (newFields) fields = { ...newFields };
      if (t - lastOut < (tty ? redrawMs : intervalMs)) return;
      lastOut = t;
      if (tty) draw(t, false);
      else stream.write(plainLine(t, false));
    },
    log(line) {
      if (tty && drawn && !finished) {
        stream.write(`\r\x1b[K${line}\n`);
        draw(now(), false);
      } else stream.write(`${line}\n`);
    },
    finish(newFields) {
      if (finished) return;
      finished = true;
      if (newFields) fields = { ...newFields };
      const t = now();
      if (tty) {
        draw(t, true);
        stream.write('\n');
      } else stream.write(plainLine(t, true));
    },
  };
}
