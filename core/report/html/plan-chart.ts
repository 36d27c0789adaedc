/**
 * The memory plan against the measured peak, as horizontal bars: one row per planned component (their names are
 * long, so they read better down the side than along an axis), then the predicted total and the measured peak. With
 * several runs each row holds one bar per run.
 */
import { formatNumber } from '../format.ts';
import { niceTicks, formatTick } from '../ticks.ts';
import { PALETTE, axesSvg, escapeXml, labelsSvg, legendSvg, noteSvg, px, svgOpen, type LegendEntry, type PlotArea } from '../svg.ts';
import type { ChartRun } from './charts.ts';

const CHAR_W = 6.8; // as svg.ts estimates 12 px sans-serif
const MAX_LABEL = 44;
const VALUE_W = 50; // room right of the longest bar for its value
const PREDICTED = 'predicted peak (total)';
const MEASURED = 'measured peak';

/** One run's bars: MiB per row (undefined: no bar), and optionally a colour per row. */
interface Bars {
  name: string;
  values: readonly (number | undefined)[];
  color: string;
  colors?: readonly (string | undefined)[];
}

/** Draws labelled horizontal bars with MiB values at their ends; empty input draws the "no data" note. */
function hbarSvg(title: string, rows: readonly string[], bars: readonly Bars[], legend: readonly LegendEntry[], width = 900): string {
  const k = Math.max(1, bars.length);
  const barH = k === 1 ? 16 : 12;
  const band = k * barH + 10;
  const top = 40;
  const bottom = top + Math.max(3, rows.length) * band; // room for the "no data" note when there are no rows
  const height = bottom + 52; // tick labels and the axis label under the bars
  const clip = (s: string) => (s.length > MAX_LABEL ? `${s.slice(0, MAX_LABEL - 1)}…` : s);
  const labelW = Math.max(6, ...rows.map((r) => clip(r).length)) * CHAR_W;
  const legendW = legend.length ? 36 + Math.max(...legend.map((e) => Math.min(28, e.name.length))) * CHAR_W : 0;
  const area: PlotArea = { left: 16 + labelW, right: width - 16 - VALUE_W - legendW, top, bottom };

  const vals = bars.flatMap((b) => b.values.filter((v): v is number => v !== undefined && Number.isFinite(v) && v >= 0));
  const empty = vals.length === 0;
  const xt = niceTicks(0, empty ? 1 : Math.max(...vals), Math.max(2, Math.floor((area.right - area.left) / 80)));
  const sx = (v: number) => area.left + (v / (xt.max || 1)) * (area.right - area.left);

  const parts: string[] = [svgOpen(width, height)];
  parts.push(axesSvg(area, xt.values.map((v) => ({ at: sx(v), label: formatTick(v, xt.step) })), []));
  parts.push('<g class="rows" fill="#222222">\n');
  rows.forEach((r, i) => {
    const y = area.top + i * band + band / 2 + 4;
    parts.push(`<text x="${px(area.left - 8)}" y="${px(y)}" text-anchor="end"><title>${escapeXml(r)}</title>${escapeXml(clip(r))}</text>\n`);
  });
  parts.push('</g>\n<g class="bars">\n');
  bars.forEach((b, j) => {
    b.values.forEach((v, i) => {
      if (v === undefined || !Number.isFinite(v) || v < 0) return;
      const y = area.top + i * band + 5 + j * barH;
      const color = b.colors?.[i] ?? b.color;
      const tip = `${b.name}: ${rows[i] ?? ''} ${formatNumber(v)} MiB`;
      parts.push(`<rect x="${px(area.left)}" y="${px(y)}" width="${px(Math.max(1, sx(v) - area.left))}" height="${px(barH - 2)}" fill="${color}"><title>${escapeXml(tip)}</title></rect>`);
      parts.push(`<text x="${px(sx(v) + 4)}" y="${px(y + barH / 2 + 2)}" font-size="10" fill="#333333">${escapeXml(formatNumber(Math.round(v * 10) / 10))}</text>\n`);
    });
  });
  parts.push('</g>\n');
  if (empty) parts.push(noteSvg(area, 'no data'));
  parts.push(legendSvg({ ...area, right: area.right + VALUE_W }, legend), labelsSvg(height, area, { title, xLabel: 'MiB' }), '</svg>\n');
  return parts.join('');
}

/** The plan chart of one or several runs (rows: the union of their components, then total and measured). */
export function planChartSvg(runs: readonly ChartRun[]): string {
  const components = [...new Set(runs.flatMap((r) => r.run.plan?.items.map((i) => i.component) ?? []))];
  const rows = [...components, PREDICTED, MEASURED];
  const one = runs.length === 1;
  const bars: Bars[] = runs.map((r, i) => {
    const mib = new Map<string, number>();
    for (const it of r.run.plan?.items ?? []) mib.set(it.component, (mib.get(it.component) ?? 0) + it.bytes / 2 ** 20);
    const values = [...components.map((c) => mib.get(c)), r.summary.predictedPeakMb, r.summary.measuredPeakMb];
    const color = PALETTE[i % PALETTE.length]!;
    // One run: the measured bar in a second colour, so it stands apart from the plan it is checked against.
    return { name: r.run.name, values, color, ...(one ? { colors: rows.map((row) => (row === MEASURED ? PALETTE[1] : undefined)) } : {}) };
  });
  const err = one ? runs[0]!.summary.peakErrorPct : undefined;
  const title = `memory plan vs measured peak${err !== undefined ? ` (error ${err >= 0 ? '+' : ''}${err.toFixed(1)}%)` : ''}`;
  const legend: LegendEntry[] = one
    ? [{ name: 'plan', color: PALETTE[0]!, kind: 'box' }, { name: 'measured', color: PALETTE[1]!, kind: 'box' }]
    : runs.map((r, i) => ({ name: r.run.name, color: PALETTE[i % PALETTE.length]!, kind: 'box' }));
  const hasData = bars.some((b) => b.values.some((v) => v !== undefined));
  return hbarSvg(title, hasData ? rows : [], hasData ? bars : [], hasData ? legend : []);
}
