/**
 * The HTML run report without a browser: every chart is there (with "no data" when its metric is not), the summary
 * holds the baseline and final figures, strings from the run's files are escaped, missing or broken files degrade to
 * "not recorded", and a comparison overlays the runs.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYNTHETIC, writeSyntheticRun } from './html.fixture.ts';
import { readRunReport, renderReport, writeComparisonReport, writeRunReport } from './index.ts';

const ROOT = mkdtempSync(join(tmpdir(), 'tuneforge-report-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

const CHARTS = ['loss', 'eval', 'lr', 'grad_norm', 'throughput', 'memory', 'plan'];

/** The inline SVG of chart `id` (the first, for `eval`). */
function chart(html: string, id: string): string {
  const m = new RegExp(`<svg data-chart="${id}"[\\s\\S]*?</svg>`).exec(html);
  if (!m) throw new Error(`no chart ${id}`);
  return m[0];
}

/** The legend labels of a chart. */
const legendOf = (svg: string): string[] => [.../<g class="legend">([\s\S]*?)<\/g>/.exec(svg)?.[1]?.matchAll(/<text[^>]*>([^<]*)<\/text>/g) ?? []].map((m) => m[1]!);

const count = (s: string, sub: string): number => s.split(sub).length - 1;

describe('run report', () => {
  const run = writeSyntheticRun(join(ROOT, 'synthetic-lora'), { hostile: true });
  const path = writeRunReport(run);
  const html = readFileSync(path, 'utf8');

  test('writes RUN/report.html: a complete, self-contained document', () => {
    expect(path).toBe(join(run, 'report.html'));
    expect(html).toStartWith('<!doctype html>');
    expect(html.trimEnd()).toEndWith('</html>');
    expect(html).toContain('<title>tuneforge report: synthetic-lora</title>');
    expect(html).not.toMatch(/https?:\/\//); // no URL at all: nothing to fetch, works offline
    expect(html).not.toMatch(/<link|<img|<iframe|\ssrc=|url\(|@import/i);
    expect(html).toContain("Content-Security-Policy\" content=\"default-src 'none'");
    expect(count(html, '<svg')).toBe(count(html, '</svg>'));
    expect(count(html, '<svg')).toBe(count(html, '<svg data-chart="'));
  });

  test('has every chart, with the curves drawn', () => {
    for (const id of CHARTS) expect(html).toContain(`data-chart="${id}"`);
    // One eval chart per metric: accuracy and loss, each with the dev/test and validation curves.
    expect(count(html, 'data-chart="eval"')).toBe(2);
    expect(legendOf(chart(html, 'eval'))).toEqual(['eval_accuracy', 'val_accuracy']);
    // Baseline, the evaluations every 50 steps up to 250; the final record scores the best checkpoint (step 250),
    // so it adds no point at step 300.
    const evalPath = /<path d="([^"]*)"/.exec(chart(html, 'eval'))![1]!;
    expect(count(evalPath, 'L') + 1).toBe(6);
    const loss = chart(html, 'loss');
    expect(legendOf(loss)).toEqual(['train loss (raw)', 'train loss (smoothed)', 'eval loss']);
    const points = Math.max(...[...loss.matchAll(/<path d="([^"]*)"/g)].map((m) => count(m[1]!, 'L') + 1));
    expect(points).toBe(300); // one point per step
    expect(legendOf(chart(html, 'memory'))).toEqual(['rss', 'peak rss', 'predicted peak']);
    expect(chart(html, 'memory')).toContain('stroke-dasharray'); // the predicted peak, dashed
    for (const id of CHARTS) expect(chart(html, id)).not.toContain('no data');
    expect(html).not.toContain('NaN');
  });

  test('summary: baseline against final for every eval key, totals, predicted against measured peak', () => {
    const summary = /<section id="summary">[\s\S]*?<\/section>/.exec(html)![0];
    for (const v of [SYNTHETIC.baseline.eval_accuracy, SYNTHETIC.final.eval_accuracy, SYNTHETIC.baseline.eval_loss, SYNTHETIC.final.eval_loss]) expect(summary).toContain(`>${v}</td>`);
    expect(summary).toContain('<th scope="row">val_accuracy</th><td>0.4871</td><td>0.8201</td><td>+0.333</td>');
    expect(summary).toContain('final (step 300, best checkpoint: step 250)');
    expect(summary).toMatch(/<dt>best step<\/dt><dd>250<\/dd>/);
    expect(summary).toMatch(/<dt>steps<\/dt><dd>300<\/dd>/);
    expect(summary).toMatch(/<dt>tokens<\/dt><dd>\d{3},\d{3}<\/dd>/);
    expect(summary).toMatch(/<dt>wall time<\/dt><dd>\d+s<\/dd>/);
    expect(summary).toContain('<dt>predicted peak</dt><dd>512.5 MiB</dd>');
    expect(summary).toMatch(/<dt>plan error<\/dt><dd>\+\d+\.\d%<\/dd>/);
    // The plan table, its total and the measured peak; the chart names the error.
    expect(html).toContain('<td>activations and temporaries</td><td class="num">250 MiB</td>');
    expect(html).toContain('<td>predicted peak (total)</td><td class="num">512.5 MiB</td>');
    expect(chart(html, 'plan')).toMatch(/memory plan vs measured peak \(error \+\d+\.\d%\)/);
  });

  test('escapes strings from the run files: a planted <script> shows as text', () => {
    expect(html).not.toContain('<script');
    expect(html).not.toContain('__pwned = 1</script>');
    const shown = '&lt;script&gt;window.__pwned = 1&lt;/script&gt;';
    expect(count(html, shown)).toBe(2); // in the config and in a generation
    expect(html).toContain(`<pre class="config">{\n  &quot;model&quot;: &quot;../shared/models/stories260k&quot;`);
    expect(html).toMatch(/<div class="prompt">Review: dull and far too long.\nSentiment:<\/div><div class="pair"><div><h4>before<\/h4><div class="gen"> &lt;script&gt;/);
    expect(html).toContain('<h4>after</h4><div class="gen"> negative</div>');
  });

  test('a resumed run (steps written twice) counts each step once', () => {
    const dir = writeSyntheticRun(join(ROOT, 'resumed'), { files: ['metrics.jsonl'] });
    const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trimEnd().split('\n');
    const before = renderReport([readRunReport(dir)]);
    // Died after step 250, resumed from the checkpoint at step 200: steps 201..250 appear twice.
    writeFileSync(join(dir, 'metrics.jsonl'), [...lines.slice(0, 251), ...lines.slice(201)].join('\n') + '\n');
    const after = renderReport([readRunReport(dir)]);
    const tokens = (h: string) => /<dt>tokens<\/dt><dd>([^<]*)</.exec(h)![1];
    expect(tokens(after)).toBe(tokens(before)!);
    const loss = chart(after, 'loss');
    expect(Math.max(...[...loss.matchAll(/<path d="([^"]*)"/g)].map((m) => count(m[1]!, 'L') + 1))).toBe(300);
  });
});

describe('missing and broken files', () => {
  test('only metrics.jsonl: plan, config and generations say "not recorded"', () => {
    const dir = writeSyntheticRun(join(ROOT, 'metrics-only'), { files: ['metrics.jsonl'] });
    const html = readFileSync(writeRunReport(dir), 'utf8');
    expect(html).toContain('memory plan: not recorded (no plan.json)');
    expect(html).toContain('config: not recorded (no config.json)');
    expect(html).toContain('generations: not recorded (no samples.json)');
    for (const id of CHARTS) expect(html).toContain(`data-chart="${id}"`);
    // Without a plan the chart still holds the prediction the metrics carry and the measured peak.
    expect(chart(html, 'plan')).toContain('predicted peak (total)');
    expect(chart(html, 'plan')).not.toContain('no data');
  });

  test('an empty folder: every chart drawn with "no data", the summary says what is missing', () => {
    const dir = join(ROOT, 'empty');
    mkdirSync(dir);
    const html = renderReport([readRunReport(dir)]);
    for (const id of CHARTS) expect(chart(html, id)).toContain('no data');
    expect(html).toContain('metrics: not recorded (no metrics.jsonl)');
    expect(html).toContain('evaluation: not recorded');
    expect(html).not.toContain('NaN');
  });

  test('no eval keys, no grad_norm, stopped early: those charts say "no data", the others draw', () => {
    const dir = join(ROOT, 'no-eval');
    mkdirSync(dir);
    const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify({ step: i + 1, loss: 3 - i / 25, lr: 1e-3, tokens: 100, tok_s: 900, rss_mb: 200, peak_rss_mb: 250 }));
    lines.push(JSON.stringify({ step: 50, peak_rss_mb: 250, stopped_early: 1 }));
    writeFileSync(join(dir, 'metrics.jsonl'), lines.join('\n') + '\n');
    const html = renderReport([readRunReport(dir)]);
    expect(chart(html, 'eval')).toContain('no data');
    expect(chart(html, 'grad_norm')).toContain('no data');
    expect(chart(html, 'loss')).not.toContain('no data');
    expect(html).toContain('<dt>wall time</dt><dd>–</dd>'); // no `time` fields
    expect(html).toContain('<dt>steps</dt><dd>50 (stopped early)</dd>');
    expect(html).toContain('<dt>tokens</dt><dd>5,000</dd>');
  });

  test('broken files are reported, not fatal; a crash-cut last metrics line is skipped', () => {
    const dir = writeSyntheticRun(join(ROOT, 'broken'), { steps: 40 });
    writeFileSync(join(dir, 'plan.json'), '{"items": 3}');
    writeFileSync(join(dir, 'config.json'), '{ not json');
    appendFileSync(join(dir, 'metrics.jsonl'), '{"step": 41, "loss"');
    const data = readRunReport(dir);
    expect(data.plan).toBeUndefined();
    expect(data.config).toBeUndefined();
    expect(data.problems).toHaveLength(2);
    const html = renderReport([data]);
    expect(html).toContain('could not read plan.json: no &quot;items&quot; list');
    expect(html).toContain('could not read config.json: ');
  });

  test('a path that is not a folder is refused', () => {
    expect(() => readRunReport(join(ROOT, 'nowhere'))).toThrow('is not a folder');
    expect(() => renderReport([])).toThrow('no runs');
  });
});

describe('comparison of two runs', () => {
  const a = writeSyntheticRun(join(ROOT, 'cmp', 'run-lora'), { seed: 1 });
  const b = writeSyntheticRun(join(ROOT, 'cmp', 'run-prefix'), { seed: 4, steps: 240 });
  const out = join(ROOT, 'cmp', 'out', 'compare.html');
  const html = readFileSync(writeComparisonReport([a, b], out), 'utf8');

  test('one chart per metric, one series per run, the legend naming both', () => {
    expect(html).toContain('<title>tuneforge report: run-lora vs run-prefix</title>');
    for (const id of ['loss', 'lr', 'grad_norm', 'throughput', 'plan']) expect(legendOf(chart(html, id))).toEqual(['run-lora', 'run-prefix']);
    expect(legendOf(chart(html, 'eval'))).toEqual(['run-lora eval', 'run-lora val', 'run-prefix eval', 'run-prefix val']);
    expect(legendOf(chart(html, 'memory'))).toEqual(['run-lora', 'run-lora predicted peak', 'run-prefix', 'run-prefix predicted peak']);
  });

  test('a summary row per run; config, plan and samples per run in <details>', () => {
    expect(count(html, '<tr><th scope="row">run-')).toBe(2);
    expect(html).toContain('<th>eval_accuracy (baseline → final)</th>');
    expect(html).toContain('<td>0.4908 → 0.8312</td>');
    expect(count(html, '<details><summary>')).toBe(2);
    expect(count(html, '<pre class="config">')).toBe(2);
    expect(count(html, '<table class="plan">')).toBe(2);
    expect(count(html, '<div class="samples">')).toBe(2);
  });
});
