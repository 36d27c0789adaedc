/**
 * The browser fine-tuning page (web/finetune): built with Bun.build, served on loopback, run in headless Chromium on
 * onnxruntime-web wasm for 20 LoRA steps, and checked against the same code on onnxruntime-node (CPU). Also the
 * static server's refusals, the in-memory safetensors reader the page uses, and the build's shims.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { hostTensor } from '../../core/ir/host.ts';
import { readSafetensorsBytes } from '../../core/io/safetensors-bytes.ts';
import { openSafetensors } from '../../core/io/safetensors-read.ts';
import { encodeSafetensors } from '../../core/io/safetensors-write.ts';
import { loadModel } from '../../core/models/load.ts';
import { encodeText } from '../../core/data/encode.ts';
import { loadTokenizer } from '../../core/tokenizer/load.ts';
import { PEFT_PREFIX } from '../../plugins/peft/folder.ts';
import { buildPage, bundleForBrowser } from '../../web/finetune/build.ts';
import { batchAt, packLines } from '../../web/finetune/data.ts';
import { generateText, loraTrainer, RECIPE, setupLora } from '../../web/finetune/lora-step.ts';
import { refusal, servePage, STORIES260K } from '../../web/finetune/serve.ts';
import { PEFT_PREFIX as SHIM_PEFT_PREFIX } from '../../web/finetune/shims/peft-folder.ts';
import { CHROMIUM } from '../runners/browser/driver.ts';

const STEPS = 20;
const temp = mkdtempSync(join(tmpdir(), 'tuneforge-web-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** One raw HTTP/1.1 GET, request-target exactly as given (fetch would resolve `..` before sending). */
function rawGet(port: number, target: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    let text = '';
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('end', () => resolve({ status: Number(text.split(' ', 2)[1]), body: text.slice(text.indexOf('\r\n\r\n') + 4) }));
  });
}

describe('the static server', () => {
  // A fake page and model: the server's rules do not depend on what the files hold.
  const dist = join(temp, 'dist'), model = join(temp, 'model');
  for (const [dir, files] of [[dist, ['index.html', 'main.js']], [model, ['config.json', 'tokenizer.json', 'model.safetensors']]] as const) {
    mkdirSync(dir, { recursive: true });
    for (const f of files) writeFileSync(join(dir, f), `contents of ${f}`);
  }
  writeFileSync(join(temp, 'secret.txt'), 'SECRET');
  const serving = servePage({ dist, model });
  afterAll(async () => (await serving).stop());

  test('serves the page, onnxruntime-web and the model files under fixed names', async () => {
    const server = await serving;
    for (const [path, body] of [['/', 'contents of index.html'], ['/main.js', 'contents of main.js'], ['/model/config.json', 'contents of config.json']]) {
      const r = await rawGet(server.port!, path!);
      expect([path, r.status, r.body]).toEqual([path, 200, body]);
    }
    const ort = await fetch(`http://127.0.0.1:${server.port}/ort/ort.min.mjs`);
    expect(ort.status).toBe(200);
    expect(ort.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
  });

  test('refuses dot segments, encoded separators, absolute paths and unknown files with 404', async () => {
    const server = await serving;
    const refused = [
      '/../secret.txt', '/model/../../secret.txt', '/%2e%2e/secret.txt', '/model/..%2F..%2Fsecret.txt', '/ort/..%2f..%2fpackage.json',
      '/model/%2e%2e%5csecret.txt', '//etc/passwd', '/model/config.json%00.txt', '/secret.txt', '/model/model.safetensors.bak',
      '/ort/ort.node.min.mjs', '/node_modules/onnxruntime-web/package.json', '/ort/../main.js', '/index.html/..',
      'http://127.0.0.1/main.js', '/c:/windows/win.ini',
    ];
    for (const path of refused) {
      const r = await rawGet(server.port!, path);
      expect([path, r.status]).toEqual([path, 404]);
      expect(r.body).not.toContain('SECRET');
    }
    expect((await rawGet(server.port!, '/', 'POST')).status).toBe(405);
    expect([refusal('/a/../b'), refusal('/a/%2E%2E/b'), refusal('/a%2fb'), refusal('//x'), refusal('/c:/x'), refusal('/ok/file.js')])
      .toEqual(['a dot segment', 'a dot segment', 'an encoded slash, backslash or NUL', 'not an origin-relative path', 'a backslash or a drive letter', undefined]);
  });
});

describe('what the page is built from', () => {
  test('readSafetensorsBytes reads what the file reader reads, and refuses a truncated file the same way', async () => {
    const tensors = { a: hostTensor('float32', [2, 3], [1, 2, 3, 4, 5, 6]), b: hostTensor('int64', [3], BigInt64Array.of(7n, -8n, 9n)), c: hostTensor('uint8', [1], [5]) };
    const bytes = encodeSafetensors(tensors, { note: 'x' });
    const path = join(temp, 't.safetensors');
    writeFileSync(path, bytes);
    const file = await openSafetensors(path);
    const read = readSafetensorsBytes(bytes, path);
    expect(read.metadata).toEqual({ note: 'x' });
    for (const name of file.names) expect([name, read.tensors.get(name)]).toEqual([name, await file.read(name)]);
    await file.close();
    writeFileSync(path, bytes.subarray(0, bytes.length - 1));
    const fromFile = await openSafetensors(path).then(() => 'opened', (e: Error) => e.message);
    expect(() => readSafetensorsBytes(bytes.subarray(0, bytes.length - 1), path)).toThrow(fromFile);
    expect(fromFile).toContain('truncated file');
  });

  test('the peft-folder shim keeps the real PEFT prefix', () => {
    expect(SHIM_PEFT_PREFIX).toBe(PEFT_PREFIX);
  });

  test('the bundle holds no Node-only code (the build refuses otherwise)', async () => {
    const page = await buildPage();
    const script = readFileSync(join(page.dist, 'main.js'), 'utf8');
    // The four dynamic imports the page never takes stay as they are; nothing else names node:, bun: or onnxruntime-node.
    const imports = [...script.matchAll(/import\("([^"]+)"\)/g)].map((m) => m[1]).sort();
    expect(imports).toEqual(['../../runners/ort-node.ts', '../runners/ort-node.ts', './onnx/external-data.ts', 'bun:ffi', 'onnxruntime-web']);
    expect(script).not.toMatch(/from\s*"(node:|bun:|onnxruntime-node)/);
    // And the check bites: the CLI's model loader reads files.
    const entry = join(temp, 'entry.ts');
    writeFileSync(entry, `import { loadModel } from ${JSON.stringify(join(import.meta.dir, '../../core/models/load.ts'))};\nconsole.log(loadModel);\n`);
    await expect(bundleForBrowser(entry)).rejects.toThrow("core/models/load.ts imports 'node:fs/promises'");
  }, 30_000);
});

const skip = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set TUNEFORGE_CHROMIUM)`
  : !existsSync(join(STORIES260K, 'model.safetensors')) ? `${STORIES260K} is absent` : undefined;
if (skip) console.log(`tests/web/finetune.test.ts: the page run is skipped: ${skip}`);

interface PageState {
  phase: string; losses: number[]; drawn: number[]; before?: string; after?: string; error?: string;
  backend?: string; threads?: number; stepsPerSecond?: number; seconds: Record<string, number>;
}

describe.skipIf(skip !== undefined)(`the page fine-tunes stories260k in Chromium (wasm, ${STEPS} steps)`, () => {
  test('loss drawn every step, falls, changes the generation, agrees with the CPU; no request leaves the origin', async () => {
    const page = await buildPage();
    const server = await servePage({});
    const origin = server.origin;
    let browser: Browser | undefined;
    try {
      const { chromium } = await import('playwright-core');
      browser = await chromium.launch({ executablePath: CHROMIUM });
      const tab = await browser.newPage({ viewport: { width: 820, height: 900 } });
      const requests: string[] = [];
      const errors: string[] = [];
      tab.on('request', (r) => requests.push(r.url()));
      tab.on('pageerror', (e) => errors.push(e.message));
      await tab.goto(`${origin}/?steps=${STEPS}&backend=wasm`);
      await tab.waitForFunction(() => {
        const s = (globalThis as unknown as { tuneforgeFinetune?: { phase: string } }).tuneforgeFinetune;
        return s?.phase === 'done' || s?.phase === 'error';
      }, undefined, { timeout: 100_000, polling: 250 });
      const state = await tab.evaluate(() => (globalThis as unknown as { tuneforgeFinetune: PageState }).tuneforgeFinetune);
      expect({ phase: state.phase, error: state.error, errors }).toEqual({ phase: 'done', error: undefined, errors: [] });
      expect(state.backend).toBe('wasm');

      // The chart was redrawn after every step with one more point, and shows all of them at the end.
      expect(state.losses).toHaveLength(STEPS);
      expect(state.drawn).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
      const d = (await tab.locator('#chart g.series path').getAttribute('d')) ?? '';
      expect((d.match(/[ML]/g) ?? []).length).toBe(STEPS);

      const first = state.losses[0]!, last = state.losses.at(-1)!;
      expect(last).toBeLessThan(first);
      const drop = (first - last) / first;
      expect(state.after !== state.before || drop > 0.2).toBe(true);
      expect(state.before).toStartWith(RECIPE.prompt);

      const outside = requests.filter((u) => new URL(u).origin !== origin);
      expect(outside).toEqual([]);

      // The same code on onnxruntime-node, from the CLI's loaders (tokenizer_config.json included): same batches.
      const { config, weights } = await loadModel(STORIES260K);
      const tok = await loadTokenizer(STORIES260K);
      const rows = packLines(tok, readFileSync(join(page.dist, 'data.txt'), 'utf8'), RECIPE.seq, RECIPE.lines);
      const m = await setupLora(config, weights, tok);
      const before = await generateText(m, weights, tok, encodeText(tok, RECIPE.prompt), { maxNewTokens: RECIPE.maxNewTokens });
      const trainer = await loraTrainer(m, weights, { B: RECIPE.batch, T: RECIPE.seq });
      const cpu: number[] = [];
      for (let step = 0; step < STEPS; step++) cpu.push(await trainer.step(batchAt(rows, step, RECIPE.batch, tok.padId ?? 0)));
      await trainer.release();
      const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
      expect(rel(first, cpu[0]!)).toBeLessThan(1e-4);
      expect(state.before).toBe(before);
      const curve = Math.max(...state.losses.map((l, i) => rel(l, cpu[i]!)));
      expect(curve).toBeLessThan(1e-3);
      console.log(
        `page (${state.backend}, threads: ${state.threads}): ${state.stepsPerSecond!.toFixed(2)} steps/s; loss ${first.toFixed(4)} -> ${last.toFixed(4)}; `
        + `vs onnxruntime-node: first loss ${rel(first, cpu[0]!).toExponential(1)}, curve ${curve.toExponential(1)} (max relative); `
        + `load ${state.seconds.load!.toFixed(1)} s, compile ${state.seconds.compile!.toFixed(1)} s, train ${state.seconds.train!.toFixed(1)} s`,
      );
    } finally {
      await browser?.close();
      await server.stop();
    }
  }, 150_000);
});
