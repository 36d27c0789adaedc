/** Progress lines (TTY and plain), the JSONL metrics round trip, and well-formed SVG charts with nice ticks. */
import { expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  barChartSvg,
  createProgress,
  ema,
  formatDuration,
  formatField,
  lineChartSvg,
  logTicks,
  lossChartSvg,
  niceTicks,
  openMetrics,
  readMetrics,
} from './index.ts';

/** A fake stream that records writes, and a clock the test moves by hand. */
function fake(isTTY: boolean) {
  const out: string[] = [];
  let t = 1_000_000;
  return { stream: { isTTY, write: (s: string) => void out.push(s) }, out, now: () => t, advance: (ms: number) => void (t += ms) };
}

/** Tag balance of an XML string: every open tag closed in order, self-closing tags allowed. */
function assertWellFormed(xml: string): void {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z][\w:-]*)([^<>]*?)(\/?)>/g)) {
    const [, close, name, , self] = m;
    if (self) continue;
    if (close) expect(stack.pop()).toBe(name!);
    else stack.push(name!);
  }
  expect(stack).toEqual([]);
  expect(xml.replace(/<[^<>]*>/g, '')).not.toMatch(/[<>]/); // no stray angle brackets in text
}

const countOf = (s: string, needle: string) => s.split(needle).length - 1;

test('formatting: loss, lr, throughput, durations', () => {
  expect(formatField('loss', 0.412345)).toBe('0.4123');
  expect(formatField('lr', 0.001)).toBe('1.0e-3');
  expect(formatField('tok/s', 12345.6)).toBe('12,346');
  expect(formatField('note', 'warmup')).toBe('warmup');
  expect([42_000, 83_000, 2 * 3600_000 + 5 * 60_000, 3 * 86400_000 + 4 * 3600_000].map(formatDuration)).toEqual(['42s', '1m23s', '2h05m', '3d04h']);
  expect(formatDuration(NaN)).toBe('--');
});

test('progress on a non-TTY stream prints throttled plain lines and a final line', () => {
  const f = fake(false);
  const p = createProgress({ total: 100, label: 'train', stream: f.stream, intervalMs: 10_000, now: f.now });
  for (let step = 1; step <= 100; step++) {
    f.advance(1000); // 1 s per step: a line every 10 steps
    p.update(step, { loss: 1 / step, lr: 1e-3, 'tok/s': 12345 });
  }
  p.log('saved checkpoint');
  p.finish();
  const lines = f.out.join('').trimEnd().split('\n');
  expect(f.out.join('')).not.toContain('\r');
  expect(lines.filter((l) => l.includes('eta')).length).toBe(10);
  expect(lines[0]).toBe('train step 10/100 (10.0%)  loss 0.1000  lr 1.0e-3  tok/s 12,345  elapsed 10s eta 1m30s');
  expect(lines).toContain('saved checkpoint');
  expect(lines.at(-1)).toBe('train done step 100/100 (100.0%)  loss 0.0100  lr 1.0e-3  tok/s 12,345  elapsed 1m40s');
});

test('progress ETA follows the smoothed step time', () => {
  const f = fake(false);
  const p = createProgress({ total: 1000, stream: f.stream, intervalMs: 0, now: f.now, smoothing: 0.5 });
  for (let step = 1; step <= 20; step++) {
    f.advance(step <= 10 ? 100 : 2000); // slows down: ETA must follow quickly
    p.update(step);
  }
  expect(f.out.at(-1)).toContain(`eta ${formatDuration((2000 - 1900 * 0.5 ** 10) * 980)}`);
});

test('progress on a TTY redraws one line in place and logs above it', () => {
  const f = fake(true);
  const p = createProgress({ total: 600, label: 'train', stream: f.stream, now: f.now });
  f.advance(500);
  p.update(120, { loss: 0.4123, lr: 1e-3, 'tok/s': 12345 });
  const first = f.out.join('');
  expect(first.startsWith('\r')).toBe(true);
  expect(first).toContain('\x1b[K');
  expect(first).toMatch(/step 120\/600 +20\.0%/);
  expect(first).toContain('loss 0.4123  lr 1.0e-3  tok/s 12,345');
  expect(first).not.toContain('\n');
  p.log('eval loss 0.5');
  expect(f.out.join('')).toContain('\r\x1b[Keval loss 0.5\n\r');
  f.advance(500);
  p.finish();
  expect(f.out.join('').endsWith('\n')).toBe(true);
  createProgress({ total: 1, stream: process.stderr }); // a real write stream type-checks (and prints nothing yet)
});

test('metrics round trip, resume appends, a partial trailing line is tolerated and repaired', () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-'));
  try {
    const path = join(dir, 'run', 'sub', 'metrics.jsonl');
    const m = openMetrics(path);
    m.write({ step: 1, loss: 2.5 });
    m.write({ step: 2, loss: 2.25, time: 'fixed' });
    m.close();
    m.close();
    expect(() => m.write({ step: 3 })).toThrow();
    let recs = readMetrics(path);
    expect(recs.length).toBe(2);
    expect(recs[0]!.step).toBe(1);
    expect(typeof recs[0]!.time).toBe('string');
    expect(Number.isNaN(Date.parse(recs[0]!.time as string))).toBe(false);
    expect(recs[1]!.time).toBe('fixed');

    appendFileSync(path, '{"step": 3, "loss": 2.'); // crash mid-write
    expect(readMetrics(path).map((r) => r.step)).toEqual([1, 2]);

    const again = openMetrics(path); // resume: the partial line is cut, new records start on a fresh line
    again.write({ step: 3, loss: 2.0 });
    again.close();
    recs = readMetrics(path);
    expect(recs.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(readFileSync(path, 'utf8').endsWith('\n')).toBe(true);

    writeFileSync(path, '{"a":1}\nnot json\n{"a":2}\n');
    expect(() => readMetrics(path)).toThrow(/:2:/);
    expect(readMetrics(join(dir, 'missing.jsonl'))).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ticks are nice (1-2-5 steps) and cover the data', () => {
  const isNice = (step: number) => [1, 2, 5, 10].some((m) => Math.abs(step / Math.pow(10, Math.floor(Math.log10(step))) - m) < 1e-9);
  for (const [lo, hi] of [[0, 600], [0.013, 0.97], [1.7, 2.3], [-3, 17], [2.31, 2.31], [0, 0], [1e-5, 3e-5], [123456, 987654]] as const) {
    const t = niceTicks(lo, hi);
    expect(isNice(t.step)).toBe(true);
    expect(t.min).toBeLessThanOrEqual(Math.min(lo, hi));
    expect(t.max).toBeGreaterThanOrEqual(Math.max(lo, hi));
    expect(t.values.length).toBeGreaterThanOrEqual(2);
    expect(t.values.length).toBeLessThanOrEqual(12);
  }
  expect(niceTicks(0, 600).values).toEqual([0, 100, 200, 300, 400, 500, 600]);
  expect(niceTicks(0.1, 0.7).values).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
  expect(logTicks(0.5, 80).values).toEqual([0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]);
  expect(niceTicks(0, 3, 10, 1).values).toEqual([0, 1, 2, 3]);
  expect(logTicks(0.3, 2.5).values).toEqual([0.1, 0.2, 0.3, 0.5, 0.7, 1, 2, 3, 5, 7, 10]);
  expect(logTicks(0.9, 1.1).values).toEqual([0.9, 0.95, 1, 1.05, 1.1]);
  expect(logTicks(1e-6, 1).values).toEqual([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1]);
});

test('ema smooths, skips non-finite points and keeps x', () => {
  expect(ema([[0, 1], [1, 3], [2, NaN], [3, 3]], 0.5)).toEqual([[0, 1], [1, 2], [3, 2.5]]);
  expect(() => ema([], 0)).toThrow();
});

test('line chart: well-formed SVG, one path per non-empty series, tick labels, legend', () => {
  const loss: [number, number][] = Array.from({ length: 600 }, (_, i) => [i + 1, 3 * Math.exp(-i / 150) + 0.4 + 0.1 * Math.sin(i)]);
  const svg = lineChartSvg({
    title: 'loss <train> & eval',
    xLabel: 'step',
    yLabel: 'loss',
    series: [
      { name: 'raw', points: [...loss, [601, NaN], [602, Infinity]], opacity: 0.3, strokeWidth: 1 },
      { name: 'smoothed', points: ema(loss, 0.05), strokeWidth: 2.5 },
      { name: 'eval', points: [[100, 2.1], [300, 1.0], [600, 0.6]], markers: true },
      { name: 'empty', points: [] },
    ],
  });
  assertWellFormed(svg);
  expect(svg.startsWith('<svg')).toBe(true);
  expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  expect(countOf(svg, '<path')).toBe(3);
  expect(countOf(svg, '<circle')).toBe(3);
  expect(svg).not.toContain('NaN');
  expect(svg).toContain('loss &lt;train&gt; &amp; eval');
  for (const label of ['>0<', '>100<', '>600<', '>1.0<', '>3.0<']) expect(svg).toContain(label);
  for (const name of ['>raw<', '>smoothed<', '>eval<', '>empty<']) expect(svg).toContain(name);
  writeFileSync('/tmp/loss.svg', lossChartSvg(loss.map(([step, l]) => ({ step, loss: l, ...(step % 100 === 0 ? { eval_loss: l + 0.2 } : {}) }))));
});

test('line chart edge cases: empty, a single point, constant values, log axis', () => {
  const empty = lineChartSvg({ title: 't', series: [] });
  assertWellFormed(empty);
  expect(empty).toContain('no data');
  expect(countOf(empty, '<path')).toBe(0);

  const one = lineChartSvg({ title: 't', series: [{ name: 'a', points: [[5, 2]] }] });
  assertWellFormed(one);
  expect(countOf(one, '<path')).toBe(1);
  expect(countOf(one, '<circle')).toBe(1);
  expect(one).not.toContain('NaN');

  const flat = lineChartSvg({ title: 't', series: [{ name: 'a', points: [[0, 1], [1, 1], [2, 1]] }] });
  assertWellFormed(flat);
  expect(flat).not.toContain('NaN');
  expect(flat).toContain('>1.00<');
  expect(flat).toContain('>2<'); // integer x: whole-number ticks only
  expect(flat).not.toContain('>0.5<');

  const log = lineChartSvg({ title: 't', logY: true, series: [{ name: 'a', points: [[0, 10], [1, 1], [2, 0.1], [3, 0], [4, -1]] }] });
  assertWellFormed(log);
  expect(log).not.toContain('NaN');
  expect(log).toContain('>0.1<');
});

test('bar chart: per-layer values, one series per technique', () => {
  const layers = Array.from({ length: 24 }, (_, i) => i);
  const svg = barChartSvg({
    title: 'weight norm per layer',
    xLabel: 'layer',
    yLabel: 'norm',
    categories: layers,
    series: [
      { name: 'full', values: layers.map((i) => 10 + i * 0.2) },
      { name: 'LoRA', values: layers.map((i) => (i === 3 ? NaN : 9 + Math.sin(i))) },
    ],
  });
  assertWellFormed(svg);
  expect(countOf(svg, '<rect')).toBe(1 + 2 * 24 - 1 + 2); // background + bars (one NaN) + legend swatches
  expect(svg).toContain('>layer<');
  expect(svg).not.toContain('NaN');
  writeFileSync('/tmp/bars.svg', svg);
  const none = barChartSvg({ categories: [], series: [] });
  assertWellFormed(none);
  expect(none).toContain('no data');
});
