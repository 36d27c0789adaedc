/**
 * Axis ticks: "nice" linear ticks on 1-2-5 steps and decade ticks for log axes, plus their labels.
 */

/** Ticks of an axis and the domain they sit in. */
export interface Ticks {
  /** Tick values, ascending, all inside `[min, max]`. */
  values: number[];
  /** Domain start: the first tick from `niceTicks`/`logTicks`; may lie inside it after `fitDomain`. */
  min: number;
  /** Domain end: the last tick from `niceTicks`/`logTicks`; may lie inside it after `fitDomain`. */
  max: number;
  /** Distance between ticks (linear axes); the decade factor for log axes. */
  step: number;
}

/** The 1-2-5 × 10^k step closest to `span / target`. */
export function niceStep(span: number, target = 5): number {
  const raw = span / Math.max(1, target);
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / pow;
  const m = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
  return m * pow;
}

/** Decimal places needed to print multiples of `step` exactly. */
function decimalsOf(step: number): number {
  return Math.max(0, Math.min(15, -Math.floor(Math.log10(step) + 1e-9)));
}

/**
 * Linear ticks covering `[min, max]` on a 1-2-5 step, about `target` intervals, the step at least `minStep` (1 for
 * integer data such as steps or layer indices). A zero-width range (constant data) is widened around its value;
 * non-finite input gives the ticks of `[0, 1]`.
 */
export function niceTicks(min: number, max: number, target = 5, minStep = 0): Ticks {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return niceTicks(0, 1, target, minStep);
  if (min > max) [min, max] = [max, min];
  if (min === max) {
    const pad = Math.max(minStep, min === 0 ? 1 : Math.abs(min) * 0.1);
    min -= pad;
    max += pad;
  }
  const step = Math.max(niceStep(max - min, target), minStep > 0 ? niceStep(minStep, 1) : 0);
  const d = decimalsOf(step);
  const lo = Math.floor(min / step + 1e-9);
  const hi = Math.ceil(max / step - 1e-9);
  const values: number[] = [];
  for (let i = lo; i <= hi; i++) values.push(Number((i * step).toFixed(d)));
  return { values, min: values[0]!, max: values[values.length - 1]!, step };
}

/**
 * Log-axis ticks for positive `[min, max]`, denser as the range narrows: whole decades only (every other one or
 * sparser past ten decades) for wide ranges, then 1-2-5 per decade, then 1-2-3-5-7 within about a decade, and plain
 * linear nice ticks below a third of a decade. The domain is widened to whole decades (or to the linear ticks);
 * trim it with {@link fitDomain}. Non-positive input gives `[1, 10]`.
 */
export function logTicks(min: number, max: number): Ticks {
  if (!(min > 0) || !(max > 0) || !Number.isFinite(min) || !Number.isFinite(max)) return logTicks(1, 10);
  if (min > max) [min, max] = [max, min];
  const span = Math.log10(max / min);
  if (span < 0.3) {
    const t = niceTicks(min, max, 4);
    if (t.min > 0) return t;
  }
  let lo = Math.floor(Math.log10(min) + 1e-9);
  let hi = Math.ceil(Math.log10(max) - 1e-9);
  if (hi === lo) hi = lo + 1;
  const decades = hi - lo;
  const every = decades > 10 ? Math.ceil(decades / 8) : 1;
  lo = Math.floor(lo / every) * every;
  hi = Math.ceil(hi / every) * every;
  const mults = span < 1.5 ? [1, 2, 3, 5, 7] : span <= 3.5 ? [1, 2, 5] : [1];
  const values: number[] = [];
  for (let e = lo; e <= hi; e += every) {
    for (const m of mults) if (e < hi || m === 1) values.push(Number(`${m}e${e}`));
  }
  return { values, min: values[0]!, max: values[values.length - 1]!, step: Math.pow(10, every) };
}

/**
 * Keeps each end of a tick domain where the nice ticks put it when that widens the data range `[lo, hi]` by at
 * most `slack` of its span (so a 1..600 axis starts at 0); otherwise ends it at the data plus `pad` of the span and
 * drops the ticks outside (a 0..31 axis stops near 31, not at 40). Log axes measure spans in decades.
 */
export function fitDomain(t: Ticks, lo: number, hi: number, opts: { slack?: number; pad?: number; log?: boolean } = {}): Ticks {
  const f = opts.log ? Math.log10 : (v: number) => v;
  const g = opts.log ? (v: number) => Math.pow(10, v) : (v: number) => v;
  const span = f(hi) - f(lo);
  if (!(span > 0) || !Number.isFinite(span)) return t;
  const slack = (opts.slack ?? 0.1) * span;
  const pad = (opts.pad ?? 0) * span;
  const min = f(lo) - f(t.min) <= slack ? t.min : Math.max(t.min, g(f(lo) - pad));
  const max = f(t.max) - f(hi) <= slack ? t.max : Math.min(t.max, g(f(hi) + pad));
  const eps = 1e-9 * (t.max - t.min);
  return { ...t, min, max, values: t.values.filter((v) => v >= min - eps && v <= max + eps) };
}

/**
 * A tick label: just enough decimals for `step` (`0.25`, `1,000`, `600`), exponent form for very large or very
 * small magnitudes (`1e-4`, `2e6`).
 */
export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) {
    const [m, e] = v.toExponential().split('e') as [string, string];
    return `${Number(Number(m).toPrecision(3))}e${e.replace('+', '')}`;
  }
  const s = v.toFixed(decimalsOf(step > 0 ? step : a));
  const [int, frac] = s.split('.') as [string, string | undefined];
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac ? `${grouped}.${frac}` : grouped;
}
