// The loss chart: an inline SVG line chart of training loss by step, with evaluation loss as separate markers.

import { clear, s } from './dom.js';

const W = 720;
const H = 260;
const M = { left: 52, right: 18, top: 18, bottom: 34 };

/** About `count` round tick values covering [lo, hi]. */
function ticks(lo, hi, count) {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((v) => v >= raw) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * Draws `train` and `evals` (arrays of [step, loss], any order) into `svg`. The svg's `data-points` says how many
 * points are drawn.
 */
export function drawLossChart(svg, train, evals) {
  clear(svg);
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const t = [...train].sort((a, b) => a[0] - b[0]);
  const e = [...evals].sort((a, b) => a[0] - b[0]);
  svg.dataset.points = String(t.length + e.length);
  const all = [...t, ...e];
  if (all.length === 0) {
    svg.append(s('text', { x: W / 2, y: H / 2, class: 'chart-empty', 'text-anchor': 'middle' }, 'Waiting for the first training step…'));
    return;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  const pad = (y1 - y0) * 0.08 || Math.abs(y0) * 0.05 || 1;
  [y0, y1] = [Math.max(0, y0 - pad), y1 + pad];
  const px = (x) => M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (y) => H - M.bottom - ((y - y0) / (y1 - y0)) * (H - M.top - M.bottom);

  const grid = s('g', { class: 'chart-grid' });
  for (const v of ticks(y0, y1, 5)) {
    grid.append(s('line', { x1: M.left, x2: W - M.right, y1: py(v), y2: py(v) }));
    grid.append(s('text', { x: M.left - 8, y: py(v) + 4, 'text-anchor': 'end' }, Number(v.toPrecision(4))));
  }
  for (const v of ticks(x0, x1, 6).filter((v) => Number.isInteger(v))) {
    grid.append(s('text', { x: px(v), y: H - M.bottom + 18, 'text-anchor': 'middle' }, v));
  }
  grid.append(s('line', { class: 'chart-axis', x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }));
  grid.append(s('text', { x: W - M.right, y: H - 4, 'text-anchor': 'end', class: 'chart-label' }, 'step'));
  svg.append(grid);

  if (t.length > 1) {
    const d = t.map((p, i) => `${i ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join('');
    svg.append(s('path', { class: 'line-train', d }));
  }
  const dots = s('g', { class: 'pts-train' });
  // Every point while there are few; then only the latest.
  for (const [x, y] of t.length <= 40 ? t : t.slice(-1)) {
    dots.append(s('circle', { cx: px(x), cy: py(y), r: 3 }, s('title', {}, `step ${x} · train loss ${y.toFixed(4)}`)));
  }
  svg.append(dots);
  const evalDots = s('g', { class: 'pts-eval' });
  for (const [x, y] of e) {
    const cx = px(x);
    const cy = py(y);
    evalDots.append(s('path', { d: `M${cx},${cy - 5}L${cx + 5},${cy}L${cx},${cy + 5}L${cx - 5},${cy}Z` }, s('title', {}, `step ${x} · eval loss ${y.toFixed(4)}`)));
  }
  svg.append(evalDots);

  const legend = s('g', { class: 'chart-legend', transform: `translate(${W - M.right - (e.length ? 210 : 100)},${M.top - 4})` });
  legend.append(s('line', { class: 'line-train', x1: 0, x2: 18, y1: 0, y2: 0 }), s('text', { x: 24, y: 4 }, 'train loss'));
  if (e.length) {
    legend.append(s('path', { class: 'pts-eval-key', d: 'M116,-5L121,0L116,5L111,0Z' }), s('text', { x: 128, y: 4 }, 'eval loss'));
  }
  svg.append(legend);
}
