/**
 * The HTML run report in a real headless browser (Debian's chromium driven by playwright-core), opened from disk as
 * a user double-clicking report.html would: every chart laid out and visible, the loss curve drawn with one point
 * per step, no console errors, no request beyond the file itself, and a planted `<script>` inert. Saves a full-page
 * screenshot (docs/report.png with TUNEFORGE_WRITE_SCREENSHOTS=1, else a temp folder). Skipped without
 * /usr/bin/chromium.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { writeSyntheticRun } from './html.fixture.ts';
import { writeComparisonReport, writeRunReport } from './index.ts';

// Functions given to page.evaluate run in the browser: the DOM globals they use (this project has no DOM lib).
interface Element {
  getAttribute(name: string): string | null;
  querySelectorAll(selector: string): ArrayLike<Element>;
  checkVisibility(): boolean;
  getBoundingClientRect(): { width: number; height: number };
}
declare const document: { querySelectorAll(selector: string): ArrayLike<Element> };
declare const window: { __pwned?: number };

const REPO = resolve(import.meta.dir, '../..');
const CHROMIUM = '/usr/bin/chromium';
const CHARTS = ['loss', 'eval', 'lr', 'grad_norm', 'throughput', 'memory', 'plan'];

const skip = existsSync(CHROMIUM) ? '' : `${CHROMIUM} is absent (apt-get install chromium)`;
if (skip) console.warn(`report browser test skipped: ${skip}`);

const ROOT = mkdtempSync(join(tmpdir(), 'tuneforge-report-browser-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

/** What the page shows of its charts: id, whether visible, its box, and the most points of any one line. */
function chartsOf(page: Page) {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll('svg[data-chart]')).map((svg) => {
      const box = svg.getBoundingClientRect();
      const lines = Array.from(svg.querySelectorAll('path, polyline')).map((p) => (p.getAttribute('d') ?? p.getAttribute('points') ?? '').split(/[ML,]/).length);
      return { id: svg.getAttribute('data-chart'), visible: svg.checkVisibility(), width: box.width, height: box.height, maxPoints: Math.max(0, ...lines) };
    }),
  );
}

/** Opens a report from disk, collecting console errors, page errors and any request not for a local file. */
async function open(browser: Browser, file: string) {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const problems: string[] = [];
  const outside: string[] = [];
  page.on('console', (m) => void (m.type() === 'error' && problems.push(m.text())));
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('request', (r) => void (!r.url().startsWith('file://') && outside.push(r.url())));
  await page.goto(pathToFileURL(file).href);
  return { page, problems, outside };
}

describe.skipIf(Boolean(skip))('report in a browser', () => {
  test('one run: every chart visible, the loss curve drawn, no errors, nothing fetched', async () => {
    const { chromium } = await import('playwright-core');
    const run = writeSyntheticRun(join(ROOT, 'synthetic-lora'), { steps: 400 });
    const hostile = writeSyntheticRun(join(ROOT, 'hostile'), { steps: 50, hostile: true });
    const other = writeSyntheticRun(join(ROOT, 'synthetic-prefix'), { steps: 300, seed: 5 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
    try {
      const { page, problems, outside } = await open(browser, writeRunReport(run));
      const charts = await chartsOf(page);
      expect(charts.map((c) => c.id).filter((id, i, all) => all.indexOf(id) === i)).toEqual(CHARTS);
      for (const c of charts) {
        expect(c.visible).toBe(true);
        expect(c.width).toBeGreaterThan(200);
        expect(c.height).toBeGreaterThan(100);
      }
      expect(charts.find((c) => c.id === 'loss')!.maxPoints).toBeGreaterThanOrEqual(400);
      expect(await page.locator('#samples .sample').count()).toBe(3);
      const shot = process.env.TUNEFORGE_WRITE_SCREENSHOTS === '1' ? join(REPO, 'docs/report.png') : join(ROOT, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(existsSync(shot)).toBe(true);
      expect(problems).toEqual([]);
      expect(outside).toEqual([]);

      // A planted <script> in the config and a generation is shown as text and never runs.
      const h = await open(browser, writeRunReport(hostile));
      expect(await h.page.evaluate(() => window.__pwned)).toBeUndefined();
      expect(await h.page.locator('pre.config').textContent()).toContain('<script>window.__pwned = 1</script>');
      expect(await h.page.locator('#samples .gen', { hasText: '<script>window.__pwned = 1</script>' }).count()).toBe(1);
      expect(h.problems).toEqual([]);

      // Two runs overlaid: every chart laid out too; the per-run blocks open.
      const c = await open(browser, writeComparisonReport([run, other], join(ROOT, 'compare.html')));
      for (const chart of await chartsOf(c.page)) {
        expect(chart.visible).toBe(true);
        expect(chart.width).toBeGreaterThan(200);
      }
      await c.page.click('details summary >> text=synthetic-prefix');
      expect(await c.page.locator('details[open] pre.config').isVisible()).toBe(true);
      expect(c.problems).toEqual([]);
      expect(c.outside).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
