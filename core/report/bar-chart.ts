/**
 * Grouped bar charts as standalone SVG strings: one group per category (e.g. a layer index), one bar per series
 * (e.g. a fine-tuning technique) in each group. Non-finite values (and, on a log axis, values <= 0) draw no bar.
 */
import { formatTick, logTicks, niceTicks } from './ticks.ts';
import { PALETTE, axesSvg, escapeXml, labelsSvg, layoutPlot, legendSvg, noteSvg, px, svgOpen, type ChartText, type LegendEntry } from './svg.ts';

/** One series of a {@link barChartSvg}: a value per category (missing or non-finite: no bar). */
export interface BarSeries {
  name: string;
  values: readonly number[];
  /** CSS colour; default the next palette colour. */
  color?: string;
}

/** Options of {@link barChartSvg}. */
export interface BarChartOptions extends ChartText {
  /** Category labels along x, in order (e.g. layer indices `0..L-1`). */
  categories: readonly (string | number)[];
  series: readonly BarSeries[];
  /** Pixels. Default 720. */
  width?: number;
  /** Pixels. Default 420. */
  height?: number;
  /** Logarithmic y axis; bars rise from the bottom of the axis. */
  logY?: boolean;
}

/**
 * Renders a grouped bar chart to an SVG string. Linear axes always include 0, so bars rise from (or hang below) 0.
 *
 *   barChartSvg({ title: 'weight norm per layer', xLabel: 'layer', yLabel: '‖W‖',
 *                 categories: [0, 1, 2], series: [{ name: 'LoRA', values: [1.2, 1.4, 1.3] }] })
 */
export function barChartSvg(opts: BarChartOptions): string {
  const width = opts.width ?? 720;
  const height = opts.height ?? 420;
  const logY = opts.logY ?? false;
  const n = opts.categories.length;
  const ok = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v) && (!logY || v > 0);
  const vals = opts.series.flatMap((s) => s.values.slice(0, n).filter(ok));
  const empty = vals.length === 0;

  const lo = Math.min(...vals);
  const hi = Math.max(...vals);
  const yTarget = Math.max(2, Math.floor((height - 90) / 55));
  const yt = empty
    ? logY
      ? logTicks(1, 10)
      : niceTicks(0, 1, yTarget)
    : logY
      ? logTicks(lo, hi)
      : niceTicks(Math.min(0, lo), Math.max(0, hi), yTarget);
  const yLabels = yt.values.map((v) => formatTick(v, logY ? v : yt.step));

  let next = 0;
  const colors = opts.series.map((s) => s.color ?? PALETTE[next++ % PALETTE.length]!);
  const legend: LegendEntry[] = opts.series.map((s, i) => ({ name: s.name, color: colors[i]!, kind: 'box' }));
  const area = layoutPlot(width, height, opts, yLabels, legend);

  const f = logY ? Math.log10 : (v: number) => v;
  const sy = (v: number) => area.bottom - ((f(v) - f(yt.min)) / (f(yt.max) - f(yt.min) || 1)) * (area.bottom - area.top);
  const band = (area.right - area.left) / Math.max(1, n);
  const k = Math.max(1, opts.series.length);
  const barW = (band * 0.8) / k;
  const base = sy(logY ? yt.min : 0);

  // Thin out category labels so they stay about 28 px apart or more.
  const widest = Math.max(1, ...opts.categories.map((c) => String(c).length));
  const every = Math.max(1, Math.ceil(Math.max(28, widest * 7 + 8) / band));
  const xTicks = opts.categories.flatMap((c, i) => (i % every === 0 ? [{ at: area.left + band * (i + 0.5), label: String(c) }] : []));

  const parts: string[] = [svgOpen(width, height)];
  parts.push(axesSvg(area, xTicks, yt.values.map((v, i) => ({ at: sy(v), label: yLabels[i]! })), false));
  parts.push('<g class="bars">\n');
  opts.series.forEach((s, j) => {
    const rects: string[] = [];
    for (let i = 0; i < n; i++) {
      const v = s.values[i];
      if (!ok(v)) continue;
      const x = area.left + band * i + band * 0.1 + barW * j;
      const y = sy(v);
      rects.push(`<rect x="${px(x)}" y="${px(Math.min(y, base))}" width="${px(Math.max(0.5, barW - 1))}" height="${px(Math.abs(base - y))}"/>`);
    }
    parts.push(`<g fill="${colors[j]!}"><title>${escapeXml(s.name)}</title>${rects.join('')}</g>\n`);
  });
  parts.push('</g>\n');
  if (empty) parts.push(noteSvg(area, 'no data'));
  parts.push(legendSvg(area, legend), labelsSvg(height, area, opts), '</svg>\n');
  return parts.join('');
}
