/**
 * SVG building blocks shared by the charts: palette, escaping, layout of the plot area, axes with grid, titles and
 * the legend. Text widths are estimated (no font metrics), generously enough for sans-serif at 12 px.
 */

/**
 * Okabe–Ito colour-blind-safe palette, ordered for a white background (the yellow, weakest on white, last).
 * Series take colours in this order and wrap around.
 */
export const PALETTE: readonly string[] = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];

/** Escapes text for SVG content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A coordinate with two decimals and no trailing zeros, keeping the SVG small. */
export function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** The plot area inside the margins, in pixels (y grows downward). */
export interface PlotArea {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** A legend entry: its label and how its swatch is drawn. */
export interface LegendEntry {
  name: string;
  color: string;
  /** `line` for line series (default), `box` for bars. */
  kind?: 'line' | 'box';
  strokeWidth?: number;
  opacity?: number;
  dashed?: boolean;
}

/** A tick at pixel position `at` with its label. */
export interface PixelTick {
  at: number;
  label: string;
}

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
const CHAR_W = 6.8;
const MAX_LEGEND_CHARS = 28;

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** Text labels shared by every chart. */
export interface ChartText {
  title?: string;
  xLabel?: string;
  yLabel?: string;
}

/** Places the plot area, leaving room for the title, axis labels, y tick labels and a legend on the right. */
export function layoutPlot(width: number, height: number, text: ChartText, yTickLabels: readonly string[], legend: readonly LegendEntry[]): PlotArea {
  const yTickW = Math.max(1, ...yTickLabels.map((l) => l.length)) * CHAR_W;
  const legendChars = Math.max(0, ...legend.map((e) => clip(e.name, MAX_LEGEND_CHARS).length));
  const legendW = legend.length > 0 ? 36 + legendChars * CHAR_W : 0;
  const left = 14 + (text.yLabel ? 20 : 0) + yTickW;
  const right = Math.max(left + 40, width - 16 - legendW);
  const top = text.title ? 40 : 16;
  const bottom = Math.max(top + 40, height - 30 - (text.xLabel ? 20 : 0));
  return { left, right, top, bottom };
}

/** Opens an SVG document of the given size with a white background. Close it with `</svg>`. */
export function svgOpen(width: number, height: number): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">\n` +
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>\n`
  );
}

/** Horizontal grid lines and y tick labels; vertical grid lines and x tick labels (when `xGrid`, else ticks only). */
export function axesSvg(area: PlotArea, xTicks: readonly PixelTick[], yTicks: readonly PixelTick[], xGrid = true): string {
  const { left, right, top, bottom } = area;
  const out: string[] = ['<g class="grid" stroke="#e3e3e3" stroke-width="1">'];
  for (const t of yTicks) out.push(`<line x1="${px(left)}" y1="${px(t.at)}" x2="${px(right)}" y2="${px(t.at)}"/>`);
  if (xGrid) for (const t of xTicks) out.push(`<line x1="${px(t.at)}" y1="${px(top)}" x2="${px(t.at)}" y2="${px(bottom)}"/>`);
  out.push('</g>', '<g class="ticks" fill="#333333">');
  for (const t of yTicks) out.push(`<text x="${px(left - 6)}" y="${px(t.at + 4)}" text-anchor="end">${escapeXml(t.label)}</text>`);
  for (const t of xTicks) out.push(`<text x="${px(t.at)}" y="${px(bottom + 16)}" text-anchor="middle">${escapeXml(t.label)}</text>`);
  out.push('</g>');
  out.push(`<g class="axes" stroke="#555555" stroke-width="1"><line x1="${px(left)}" y1="${px(bottom)}" x2="${px(right)}" y2="${px(bottom)}"/>`);
  out.push(`<line x1="${px(left)}" y1="${px(top)}" x2="${px(left)}" y2="${px(bottom)}"/>`);
  for (const t of xTicks) out.push(`<line x1="${px(t.at)}" y1="${px(bottom)}" x2="${px(t.at)}" y2="${px(bottom + 4)}"/>`);
  out.push('</g>');
  return out.join('\n') + '\n';
}

/** Title (centred over the plot), x label (under the ticks) and y label (rotated, left). */
export function labelsSvg(height: number, area: PlotArea, text: ChartText): string {
  const out: string[] = [];
  const cx = (area.left + area.right) / 2;
  if (text.title) out.push(`<text class="title" x="${px(cx)}" y="24" text-anchor="middle" font-size="15" font-weight="600" fill="#111111">${escapeXml(text.title)}</text>`);
  if (text.xLabel) out.push(`<text class="x-label" x="${px(cx)}" y="${px(height - 10)}" text-anchor="middle" fill="#333333">${escapeXml(text.xLabel)}</text>`);
  if (text.yLabel) {
    const cy = (area.top + area.bottom) / 2;
    out.push(`<text class="y-label" x="16" y="${px(cy)}" text-anchor="middle" transform="rotate(-90 16 ${px(cy)})" fill="#333333">${escapeXml(text.yLabel)}</text>`);
  }
  return out.length ? out.join('\n') + '\n' : '';
}

/** The legend, in the right margin next to the top of the plot. */
export function legendSvg(area: PlotArea, entries: readonly LegendEntry[]): string {
  if (entries.length === 0) return '';
  const x = area.right + 14;
  const out: string[] = ['<g class="legend">'];
  entries.forEach((e, i) => {
    const y = area.top + 8 + i * 18;
    const op = e.opacity !== undefined && e.opacity < 1 ? ` stroke-opacity="${e.opacity}"` : '';
    if (e.kind === 'box') out.push(`<rect x="${px(x)}" y="${px(y - 5)}" width="18" height="10" fill="${e.color}"/>`);
    else {
      const dash = e.dashed ? ' stroke-dasharray="5 3"' : '';
      out.push(`<line x1="${px(x)}" y1="${px(y)}" x2="${px(x + 18)}" y2="${px(y)}" stroke="${e.color}" stroke-width="${e.strokeWidth ?? 2}"${op}${dash}/>`);
    }
    out.push(`<text x="${px(x + 24)}" y="${px(y + 4)}" fill="#222222">${escapeXml(clip(e.name, MAX_LEGEND_CHARS))}</text>`);
  });
  out.push('</g>');
  return out.join('\n') + '\n';
}

/** A centred grey note inside the plot area (e.g. "no data"). */
export function noteSvg(area: PlotArea, note: string): string {
  return `<text x="${px((area.left + area.right) / 2)}" y="${px((area.top + area.bottom) / 2)}" text-anchor="middle" fill="#888888">${escapeXml(note)}</text>\n`;
}
