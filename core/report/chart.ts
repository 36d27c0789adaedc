/**
 * Line charts as standalone SVG strings: nice 1-2-5 ticks, grid, legend, one colour-blind-safe colour per series,
 * optional log y axis. Points with a non-finite coordinate (and, on a log axis, y <= 0) are skipped; empty input
 * draws empty axes with a "no data" note.
 */
import { fitDomain, formatTick, logTicks, niceTicks, type Ticks } from './ticks.ts';
import { PALETTE, axesSvg, labelsSvg, layoutPlot, legendSvg, noteSvg, px, svgOpen, type ChartText, type LegendEntry } from './svg.ts';

/** One line of a {@link lineChartSvg}. */
export interface LineSeries {
  /** Legend label. */
  name: string;
  /** `[x, y]` points, drawn in the given order. */
  points: readonly (readonly [number, number])[];
  /** CSS colour; default the next palette colour (series with an explicit colour don't use one up). */
  color?: string;
  /** Line width in px. Default 2. */
  strokeWidth?: number;
  /** Line opacity in [0, 1]. Default 1; e.g. 0.25 for a faint raw curve under its smoothed one. */
  opacity?: number;
  /** Dashed line. */
  dashed?: boolean;
  /** Draw a dot at each point. Default only for single-point series (which have no line to show). */
  markers?: boolean;
  /** Show in the legend. Default true. */
  legend?: boolean;
}

/** Options of {@link lineChartSvg}. */
export interface LineChartOptions extends ChartText {
  series: readonly LineSeries[];
  /** Pixels. Default 720. */
  width?: number;
  /** Pixels. Default 420. */
  height?: number;
  /** Logarithmic y axis (decade ticks). */
  logY?: boolean;
}

/** A series with its unusable points removed and its colour resolved. */
interface Clean {
  s: LineSeries;
  pts: (readonly [number, number])[];
  color: string;
}

/** Resolves colours (explicit ones don't consume palette entries) and drops non-plottable points. */
function cleanSeries(series: readonly LineSeries[], logY: boolean): Clean[] {
  let next = 0;
  return series.map((s) => {
    const color = s.color ?? PALETTE[next++ % PALETTE.length]!;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0));
    return { s, pts, color };
  });
}

/** Maps a value onto `[a, b]` pixels through a domain. */
function scale(t: Ticks, a: number, b: number, log: boolean): (v: number) => number {
  const f = log ? Math.log10 : (v: number) => v;
  const lo = f(t.min);
  const span = f(t.max) - lo || 1;
  return (v) => a + ((f(v) - lo) / span) * (b - a);
}

/**
 * Renders a multi-series line chart to an SVG string. Serves training curves (step on x, loss on y) as well as
 * per-layer statistics (layer index on x, weight norm on y, one series per technique).
 *
 *   lineChartSvg({ title: 'loss', xLabel: 'step', yLabel: 'loss',
 *                  series: [{ name: 'train', points: [[0, 2.3], [1, 2.1]] }] })
 */
export function lineChartSvg(opts: LineChartOptions): string {
  const width = opts.width ?? 720;
  const height = opts.height ?? 420;
  const logY = opts.logY ?? false;
  const clean = cleanSeries(opts.series, logY);
  const all = clean.flatMap((c) => c.pts);
  const empty = all.length === 0;
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const minOf = (v: number[]) => v.reduce((a, b) => (b < a ? b : a), Infinity);
  const maxOf = (v: number[]) => v.reduce((a, b) => (b > a ? b : a), -Infinity);

  const yTarget = Math.max(2, Math.floor((height - 90) / 55));
  const [y0, y1] = [minOf(ys), maxOf(ys)];
  const yt = empty
    ? logY
      ? logTicks(1, 10)
      : niceTicks(0, 1, yTarget)
    : fitDomain(logY ? logTicks(y0, y1) : niceTicks(y0, y1, yTarget), y0, y1, { slack: 0.15, pad: 0.04, log: logY });
  const yLabels = yt.values.map((v) => formatTick(v, logY ? v : yt.step));
  const legend: LegendEntry[] = clean
    .filter((c) => c.s.legend !== false)
    .map((c) => ({ name: c.s.name, color: c.color, strokeWidth: c.s.strokeWidth, opacity: c.s.opacity, dashed: c.s.dashed }));
  const area = layoutPlot(width, height, opts, yLabels, legend);
  const intX = !empty && xs.every(Number.isInteger);
  const [x0, x1] = empty ? [0, 1] : [minOf(xs), maxOf(xs)];
  const xt = fitDomain(niceTicks(x0, x1, Math.max(2, Math.floor((area.right - area.left) / 90)), intX ? 1 : 0), x0, x1, { slack: 0.05 });
  const sx = scale(xt, area.left, area.right, false);
  const sy = scale(yt, area.bottom, area.top, logY);

  const parts: string[] = [svgOpen(width, height)];
  parts.push(
    axesSvg(
      area,
      xt.values.map((v) => ({ at: sx(v), label: formatTick(v, xt.step) })),
      yt.values.map((v, i) => ({ at: sy(v), label: yLabels[i]! })),
    ),
  );
  parts.push('<g class="series" fill="none" stroke-linejoin="round" stroke-linecap="round">\n');
  for (const c of clean) {
    if (c.pts.length === 0) continue;
    const d = c.pts.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${px(sx(x))} ${px(sy(y))}`).join('');
    const w = c.s.strokeWidth ?? 2;
    const op = c.s.opacity !== undefined && c.s.opacity < 1 ? ` stroke-opacity="${c.s.opacity}"` : '';
    const dash = c.s.dashed ? ' stroke-dasharray="6 4"' : '';
    parts.push(`<path d="${d}" stroke="${c.color}" stroke-width="${w}"${op}${dash}/>\n`);
    if (c.s.markers ?? c.pts.length === 1) {
      const r = Math.max(2.5, w * 1.3);
      const fo = c.s.opacity !== undefined && c.s.opacity < 1 ? ` fill-opacity="${c.s.opacity}"` : '';
      for (const [x, y] of c.pts) parts.push(`<circle cx="${px(sx(x))}" cy="${px(sy(y))}" r="${px(r)}" fill="${c.color}"${fo}/>\n`);
    }
  }
  parts.push('</g>\n');
  if (empty) parts.push(noteSvg(area, 'no data'));
  parts.push(legendSvg(area, legend), labelsSvg(height, area, opts), '</svg>\n');
  return parts.join('');
}
