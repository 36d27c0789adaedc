/**
 * Number and time formatting for progress lines and chart labels.
 *
 * Locale-independent on purpose: logs read the same on every machine (`12,345`, never `12.345` or `12 345`).
 */

/** Groups the integer part of a decimal string with commas: `"12345.6"` → `"12,345.6"`. */
function groupThousands(s: string): string {
  const neg = s.startsWith('-');
  const body = neg ? s.slice(1) : s;
  const dot = body.indexOf('.');
  const int = dot < 0 ? body : body.slice(0, dot);
  const frac = dot < 0 ? '' : body.slice(dot);
  return (neg ? '-' : '') + int.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + frac;
}

/** An integer count with thousands separators: `12345.4` → `"12,345"`. Non-finite values print as `-`. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '-';
  return groupThousands(Math.round(n).toFixed(0));
}

/** Exponent form with one decimal, as learning rates are written: `0.001` → `"1.0e-3"`, `0` → `"0"`. */
export function formatExp(n: number): string {
  if (n === 0) return '0';
  if (!Number.isFinite(n)) return String(n);
  return n.toExponential(1).replace('e+', 'e');
}

/**
 * A general number in at most ~5 characters of precision: integers grouped (`12,345`), large floats rounded and
 * grouped, ordinary floats to 4 significant digits (`0.1235`, `3.142`), tiny ones in exponent form (`2.5e-5`).
 */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return Number.isNaN(n) ? 'nan' : n > 0 ? 'inf' : '-inf';
  if (Number.isInteger(n)) return groupThousands(n.toFixed(0));
  const a = Math.abs(n);
  if (a >= 1000) return formatCount(n);
  if (a < 1e-3) return formatExp(n);
  return String(Number(n.toPrecision(4)));
}

/**
 * Formats one progress field by its name: names containing `loss` or `ppl` get 4 decimals, learning rates (`lr`,
 * `learning_rate`) exponent form, throughputs (`tok/s`, `tok_per_s`, any name ending in `/s`) a grouped integer, anything else
 * {@link formatNumber}. Strings pass through unchanged, so callers can preformat a field.
 */
export function formatField(name: string, value: string | number): string {
  if (typeof value === 'string') return value;
  if (!Number.isFinite(value)) return formatNumber(value);
  const key = name.toLowerCase();
  if (/loss|ppl|perplexity/.test(key)) return value.toFixed(4);
  if (/^lr$|(^|[_\s-])lr($|[_\s-])|learning.?rate/.test(key)) return formatExp(value);
  if (/\/s$|per.?s(ec)?$|throughput/.test(key)) return formatCount(value);
  return formatNumber(value);
}

/**
 * A duration in milliseconds, compact and fixed-shape: `42s`, `1m23s`, `2h05m`, `3d04h`. Negative or non-finite
 * durations (an unknown ETA) print as `--`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}
