/**
 * The dashboard end to end in a real headless browser (Debian's chromium driven by playwright-core): enter the key,
 * upload a chat JSONL, plan a LoRA run, create it, follow it to success in the detail view (chart, events), download
 * a result file, and take a screenshot (docs/dashboard.png with TUNEFORGE_WRITE_SCREENSHOTS=1). Skipped without
 * /usr/bin/chromium or the test model.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';

// Functions given to page.evaluate run in the browser: the DOM globals they use (this project has no DOM lib).
declare const document: { querySelector(selector: string): { textContent: string | null; getAttribute(name: string): string | null } | null };
declare const window: { scrollTo(x: number, y: number): void; __dropNext: boolean; __streams: { lastEventId: string | null; dropped?: string }[] };

const REPO = resolve(import.meta.dir, '../..');
const MODEL = resolve(REPO, '../shared/models/stories260k');
const CHROMIUM = '/usr/bin/chromium';
const KEY = 'sk-dashboard-test-key-0123456789';

const skip = !existsSync(CHROMIUM) ? `${CHROMIUM} is absent (apt-get install chromium)` : !existsSync(join(MODEL, 'config.json')) ? `the test model ${MODEL} is absent` : '';
if (skip) console.warn(`dashboard browser test skipped: ${skip}`);

/**
 * Runs in the page before its scripts: records every event-stream request's Last-Event-ID, and when the test sets
 * `__dropNext`, cuts the next stream after three events (as a dropped connection would).
 */
const DROP_STREAM = `(() => {
  window.__streams = [];
  window.__dropNext = false;
  const realFetch = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    if (!String(input).includes('stream=true')) return realFetch(input, init);
    const record = { lastEventId: new Headers(init && init.headers).get('last-event-id') };
    window.__streams.push(record);
    const res = await realFetch(input, init);
    if (!window.__dropNext || !res.ok) return res;
    window.__dropNext = false;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let buf = '';
    let events = 0;
    const body = new ReadableStream({
      async start(c) {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\\n\\n')) >= 0) {
            const block = buf.slice(0, i + 2);
            buf = buf.slice(i + 2);
            c.enqueue(encoder.encode(block));
            const id = /^id: (.*)$/m.exec(block);
            if (id && ++events === 3) {
              record.dropped = id[1];
              reader.cancel();
              c.close();
              return;
            }
          }
        }
        c.close();
      },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
})();`;

/** Waits until the element's text contains `text` (any text at all for ''). */
function hasText(page: Page, selector: string, text: string, timeout = 10_000) {
  return page.waitForFunction(([sel, t]) => {
    const got = document.querySelector(sel)?.textContent?.trim() ?? '';
    return t === '' ? got.length > 0 : got.includes(t);
  }, [selector, text] as const, { timeout });
}

describe('SseParser', () => {
  test('splits blocks, joins data lines, skips comments, keeps ids, across chunk boundaries', async () => {
    // The browser module, loaded by URL (plain JS, outside the type check).
    const { SseParser } = await import(new URL('./api.js', import.meta.url).href);
    const p = new SseParser();
    expect(p.push(': tuneforge event stream\n\nid: a1\nevent: metr')).toEqual([]);
    expect(p.push('ics\ndata: {"x":1}\n\nevent: end\ndata: {}\n\n: keep-alive\n\n')).toEqual([
      { id: 'a1', event: 'metrics', data: '{"x":1}' },
      { id: undefined, event: 'end', data: '{}' },
    ]);
    expect(p.push('data: one\r\ndata:two\r\n\r\n')).toEqual([{ id: undefined, event: 'message', data: 'one\ntwo' }]);
  });
});

describe.skipIf(Boolean(skip))('dashboard in a browser', () => {
  let home: string;
  let server: Awaited<ReturnType<typeof import('../serve.ts').startServer>>;
  const logs: string[] = [];

  beforeAll(async () => {
    const { startServer } = await import('../serve.ts');
    home = mkdtempSync(join(tmpdir(), 'tuneforge-dashboard-'));
    server = await startServer({ home, port: 0, apiKeys: [KEY], allowModels: [MODEL], pollMs: 200 }, (l) => logs.push(l));
  });

  afterAll(async () => {
    await server?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  test('serves the page and its assets with a strict CSP, without a key', async () => {
    const page = await fetch(`${server.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    for (const [path, type] of [['app.js', 'text/javascript'], ['style.css', 'text/css'], ['icon.svg', 'image/svg+xml']] as const) {
      const r = await fetch(`${server.url}/dashboard/${path}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toStartWith(type);
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      const again = await fetch(`${server.url}/dashboard/${path}`, { headers: { 'if-none-match': r.headers.get('etag')! } });
      expect(again.status).toBe(304);
    }
    expect((await fetch(`${server.url}/dashboard/routes.ts`)).status).toBe(404);
    expect((await fetch(`${server.url}/dashboard/..%2Fservice.ts`)).status).toBe(404);
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//); // nothing from outside
  });

  test('a LoRA job from upload to download', async () => {
    const { chromium } = await import('playwright-core');
    const data = join(home, 'chats.jsonl');
    const names = ['Lily', 'Tom', 'Sam', 'Mia', 'Ben'];
    writeFileSync(data, `${Array.from({ length: 20 }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: `Tell me about ${names[i % 5]}.` }, { role: 'assistant', content: `${names[i % 5]} was a happy child who liked to play in the park.` }] })).join('\n')}\n`);

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const problems: string[] = [];
    const outside: string[] = [];
    try {
      const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
      const page = await context.newPage();
      await page.addInitScript(DROP_STREAM);
      const refused: string[] = [];
      page.on('console', (m) => void (m.type() === 'error' && !m.text().startsWith('Failed to load resource') && problems.push(m.text())));
      page.on('pageerror', (e) => problems.push(e.message));
      page.on('response', (r) => void (r.status() >= 400 && refused.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`)));
      page.on('request', (r) => void (!r.url().startsWith(server.url) && !r.url().startsWith('blob:') && outside.push(r.url())));
      await page.goto(`${server.url}/`);

      // The key: a wrong one is refused, the right one kept.
      await page.locator('#key-dialog').waitFor({ state: 'visible' });
      await page.fill('#key-input', 'sk-not-the-right-key-000000');
      await page.click('#key-save');
      await hasText(page, '#key-error', 'refused');
      await page.fill('#key-input', KEY);
      await page.click('#key-save');
      await page.locator('#key-dialog').waitFor({ state: 'hidden' });
      expect(await page.evaluate(() => localStorage.getItem('tuneforge.apiKey'))).toBe(KEY);

      // The form: model, upload (validated), LoRA r 4, one epoch of batches of 4.
      const model = page.locator('#f-model option', { hasText: 'stories260k' }).first();
      await model.waitFor({ state: 'attached' });
      await page.selectOption('#f-model', (await model.getAttribute('value'))!);
      // A file that fails validation says why, next to the field; then the good one.
      const bad = join(home, 'bad.jsonl');
      writeFileSync(bad, '{"messages": "not a list"}\nnot json at all\n');
      await page.setInputFiles('#f-training', bad);
      await hasText(page, '#training-status', 'failed validation', 15_000);
      await hasText(page, '[data-param="training_file"] .field-error', '');
      await page.setInputFiles('#f-training', data);
      await hasText(page, '#training-status', 'validated', 15_000);
      await page.selectOption('#f-technique', 'lora');
      await page.fill('#opt-r', '4');
      await page.fill('#f-epochs', '1');
      await page.fill('#f-batch', '4');
      await page.fill('#f-suffix', 'dash');

      // An API refusal lands next to its field.
      await page.fill('#f-batch', '999');
      await page.click('#plan-btn');
      await hasText(page, '[data-param="hyperparameters.batch_size"] .field-error', '');
      await hasText(page, '#form-error', 'Batch size');
      await page.fill('#f-batch', '4');

      await page.click('#plan-btn');
      await hasText(page, '#plan-total', 'MB');
      expect(await page.locator('#plan .plan-items tr').count()).toBeGreaterThan(0);

      await page.click('#submit-btn');
      const row = page.locator('#jobs-body tr[data-job-id]');
      await row.first().waitFor();
      const jobId = (await row.first().getAttribute('data-job-id'))!;
      expect(jobId).toStartWith('ftjob-');
      await hasText(page, `#jobs-body tr[data-job-id="${jobId}"]`, 'lora');

      // Open it from the table.
      await page.click('#close-btn');
      await page.locator('#detail').waitFor({ state: 'hidden' });
      await page.evaluate(() => void (window.__dropNext = true));
      await row.first().click();
      await hasText(page, '#detail-title', jobId);
      await hasText(page, '#detail-status', 'succeeded', 50_000);
      await page.waitForFunction(() => Number(document.querySelector('#loss-chart')?.getAttribute('data-points')) > 0);

      // The stream opened by the click was dropped after three events: the page reconnected from the last one it had,
      // and the list holds every event once.
      const streams = await page.evaluate(() => window.__streams);
      const cut = streams.findIndex((x) => x.dropped);
      expect(cut).toBeGreaterThan(-1);
      expect(streams[cut]!.lastEventId).toBeNull();
      expect(streams[cut + 1]?.lastEventId).toBe(streams[cut]!.dropped!);
      const all = (await (await fetch(`${server.url}/v1/fine_tuning/jobs/${jobId}/events?limit=100`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { data: { id: string }[] };
      await hasText(page, '#events-count', String(all.data.length));
      const shown = await page.locator('#events li').count();
      expect(shown).toBe(all.data.length);
      expect(await page.locator('#loss-chart .pts-train circle').count()).toBeGreaterThan(0);
      await page.locator('#events li').first().waitFor();
      await hasText(page, `#jobs-body tr[data-job-id="${jobId}"] .badge`, 'succeeded');

      // A result file downloads (the metrics CSV, fetched with the key into a Blob URL).
      const csv = page.locator('#results a.download', { hasText: 'metrics.csv' });
      await csv.waitFor({ timeout: 10_000 });
      const [download] = await Promise.all([page.waitForEvent('download'), csv.click()]);
      const path = await download.path();
      expect(readFileSync(path, 'utf8')).toStartWith('step,train_loss');

      await page.mouse.move(0, 0);
      await page.evaluate(() => window.scrollTo(0, 0));
      // The docs' screenshot is rewritten on request only, so a test run leaves the working tree as it was.
      const shot = process.env.TUNEFORGE_WRITE_SCREENSHOTS === '1' ? join(REPO, 'docs/dashboard.png') : join(home, 'dashboard.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(existsSync(shot)).toBe(true);

      // The wrong key and the batch size of 999, nothing else.
      expect(refused).toEqual(['401 GET /v1/fine_tuning/jobs', '400 POST /v1/plans']);

      // A long run (advanced steps) to pause, resume and cancel from the detail view.
      await page.click('details.advanced summary');
      await page.fill('#f-steps', '100000');
      await page.click('#submit-btn'); // steps and n_epochs 1 conflict
      await hasText(page, '[data-param="tuneforge.train.steps"] .field-error', 'conflicts');
      await page.fill('#f-epochs', 'auto');
      await page.click('#submit-btn');
      await page.locator(`#jobs-body tr[data-job-id]`).nth(1).waitFor();
      const longId = (await page.locator('#detail-title').textContent())!;
      expect(longId).not.toBe(jobId);
      const longJob = (await (await fetch(`${server.url}/v1/fine_tuning/jobs/${longId}`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { tuneforge: { config: { train: { steps: number } } } };
      expect(longJob.tuneforge.config.train.steps).toBe(100000);
      await hasText(page, '#detail-status', 'running', 20_000);
      await page.waitForFunction(() => Number(document.querySelector('#loss-chart')?.getAttribute('data-points')) > 0, undefined, { timeout: 20_000 });
      await page.click('#pause-btn');
      await hasText(page, '#detail-status', 'paused', 20_000);
      await page.click('#resume-btn');
      await hasText(page, '#detail-status', 'running', 20_000);
      await page.click('#cancel-btn');
      await hasText(page, '#detail-status', 'cancelled', 20_000);

      // Forget key: the dialog again, the key gone.
      await page.click('#forget-key');
      await page.locator('#key-dialog').waitFor({ state: 'visible' });
      expect(await page.evaluate(() => localStorage.getItem('tuneforge.apiKey'))).toBeNull();
    } catch (e) {
      console.error(`server log:\n${logs.slice(-40).join('\n')}\npage problems: ${problems.join('\n') || 'none'}`);
      const page = browser.contexts()[0]?.pages()[0];
      if (page) {
        console.error(`page: detail error "${await page.locator('#detail-error').textContent()}", form error "${await page.locator('#form-error').textContent()}"`);
        await page.screenshot({ path: join(tmpdir(), 'dashboard-failure.png'), fullPage: true });
      }
      throw e;
    } finally {
      await browser.close();
    }
    expect(problems).toEqual([]);
    expect(outside).toEqual([]);
  }, 90_000);
});
