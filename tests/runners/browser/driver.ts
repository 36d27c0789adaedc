/**
 * onnxruntime-web in headless Chromium as conformance runners: a loopback server (the page, its script bundled by
 * Bun.build, onnxruntime-web's dist files; cross-origin isolated so wasm gets threads), one browser shared by the
 * wasm and the WebGPU entries, and a Runner whose sessions live in the page. WebGPU runs on SwiftShader (a CPU).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { FallbackReport, OrtWebBackend } from '../../../runners/ort-web.ts';
import type { ConformanceCase, ConformanceRunner } from '../../../runners/conformance.ts';
import type { CompiledStep, LoadOptions, Runner, RunnerSession } from '../../../runners/types.ts';
import type { HostTensor } from '../../../core/ir/host.ts';
import type { PageApi, PageRunnerOptions } from './page.ts';
import { fromWire, mapValues, stepToWire, toWire } from './wire.ts';

export const CHROMIUM = process.env.TUNEFORGE_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'];
// Headers that make the page cross-origin isolated: SharedArrayBuffer, hence wasm threads.
const ISOLATED = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

/**
 * The onnxruntime-web build a page loads: `jsep`, its default (`onnxruntime-web`, ort.min.mjs: WebGPU through JSEP,
 * kernels written in JavaScript), or `native` (`onnxruntime-web/webgpu`, ort.webgpu.min.mjs: onnxruntime's own C++
 * WebGPU provider compiled to wasm with asyncify). One page per build, in one browser.
 */
export type OrtWebBuild = 'jsep' | 'native';
const BUILD_FILES: Record<OrtWebBuild, string> = { jsep: 'ort.min.mjs', native: 'ort.webgpu.min.mjs' };

interface Harness { browser: Browser; server: ReturnType<typeof Bun.serve>; pages: Map<OrtWebBuild, Promise<{ page: Page; errors: string[] }>> }
let harness: Promise<Harness> | undefined;

async function start(): Promise<Harness> {
  const built = await Bun.build({ entrypoints: [join(import.meta.dir, 'page.ts')], target: 'browser', format: 'esm', external: ['onnxruntime-web'] });
  if (!built.success) throw new Error(`bundling the page failed: ${built.logs.join('\n')}`);
  const script = await built.outputs[0]!.text();
  const dist = dirname(Bun.resolveSync('onnxruntime-web', import.meta.dir));
  const html = await Bun.file(join(import.meta.dir, 'index.html')).text();
  const pageOf = (build: OrtWebBuild) => html.replace(`/ort/${BUILD_FILES.jsep}`, `/ort/${BUILD_FILES[build]}`);
  const server = Bun.serve({
    hostname: '127.0.0.1', port: 0, // loopback: a secure context, which WebGPU requires
    fetch(req) {
      const path = new URL(req.url).pathname;
      const type = (t: string) => ({ headers: { ...ISOLATED, 'content-type': t } });
      if (path === '/') return new Response(pageOf('jsep'), type('text/html'));
      if (path === '/native') return new Response(pageOf('native'), type('text/html'));
      if (path === '/page.js') return new Response(script, type('text/javascript'));
      const file = path.startsWith('/ort/') ? join(dist, path.slice(5)) : undefined;
      if (file && !file.includes('..') && existsSync(file)) {
        return new Response(Bun.file(file), type(file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript'));
      }
      return new Response('not found', { status: 404 });
    },
  });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  return { browser, server, pages: new Map() };
}

async function openPage(h: Harness, build: OrtWebBuild): Promise<{ page: Page; errors: string[] }> {
  const page = await h.browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${h.server.port}/${build === 'jsep' ? '' : build}`);
  await page.waitForFunction(() => 'conformance' in globalThis, undefined, { timeout: 30_000 });
  return { page, errors };
}

async function getPage(build: OrtWebBuild): Promise<{ page: Page; errors: string[] }> {
  const h = await (harness ??= start());
  if (!h.pages.has(build)) h.pages.set(build, openPage(h, build));
  return h.pages.get(build)!;
}

/** Calls the API of the page of a build (page.ts) with JSON-safe arguments. */
async function callOn<K extends keyof PageApi>(build: OrtWebBuild, name: K, ...args: Parameters<PageApi[K]>): Promise<Awaited<ReturnType<PageApi[K]>>> {
  const { page, errors } = await getPage(build);
  try {
    return await page.evaluate(
      ({ name, args }) => (globalThis as unknown as { conformance: Record<string, (...a: unknown[]) => unknown> }).conformance[name]!(...args),
      { name, args: args as unknown[] },
    ) as Awaited<ReturnType<PageApi[K]>>;
  } catch (e) {
    const page = errors.length ? `\n  page errors: ${errors.join('\n  ')}` : '';
    throw new Error(`${(e as Error).message}${page}`, { cause: e });
  }
}

const call = <K extends keyof PageApi>(name: K, ...args: Parameters<PageApi[K]>) => callOn('jsep', name, ...args);

export type BrowserSession = RunnerSession & { readHeld(input: string): Promise<HostTensor>; fallbackReport(): Promise<FallbackReport> };

/** A Runner whose sessions are onnxruntime-web sessions in the page. */
export interface BrowserRunner extends Runner {
  load(step: CompiledStep, options?: LoadOptions): Promise<BrowserSession>;
}

/** A Runner on onnxruntime-web in the page of a build; WebGPU refuses CPU fallback unless `cpuFallback: true`. */
export function browserRunner(backend: OrtWebBackend, options: PageRunnerOptions = {}, build: OrtWebBuild = 'jsep'): BrowserRunner {
  const o: PageRunnerOptions = { cpuFallback: false, ...options };
  const on = <K extends keyof PageApi>(name: K, ...args: Parameters<PageApi[K]>) => callOn(build, name, ...args);
  return {
    name: `onnxruntime-web ${backend} (chromium${build === 'jsep' ? '' : `, ${build}`})`,
    // The page's runner holds fed-back outputs (GPU buffers on WebGPU), shared by a store's sessions.
    holdsOutputs: true,
    sharesStores: true,
    async load(step, load: LoadOptions = {}) {
      const id = await on('load', backend, stepToWire(step), o, { ...(load.feedback ? { feedback: { ...load.feedback } } : {}), ...(load.store ? { store: load.store } : {}) });
      return {
        run: async (feeds) => mapValues(await on('run', id, mapValues(feeds, toWire)), fromWire),
        readHeld: async (input) => fromWire(await on('readHeld', id, input)),
        fallbackReport: () => on('fallbackReport', id),
        release: () => on('release', id),
      };
    },
  };
}

async function chromiumAvailable(): Promise<string | true> {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set TUNEFORGE_CHROMIUM)`;
  try {
    await getPage('jsep');
    return true;
  } catch (e) {
    return `Chromium did not start the page: ${(e as Error).message.split('\n')[0]}`;
  }
}

const close = async () => {
  const h = harness;
  harness = undefined;
  if (!h) return;
  const { browser, server } = await h;
  await browser.close();
  server.stop(true);
};

/**
 * onnxruntime-web 1.30 on WebGPU (JSEP) places int64 comparisons on the CPU and copies their bool results to the GPU;
 * with two such results in one run, both read the first one's values. The cross-entropy's `labels >= 0` and
 * `labels == -100` are such a pair, so its weights, hence its loss, come out 0. int32 labels avoid it.
 */
export const INT64_COMPARE_DEFECT = 'onnxruntime-web 1.30 WebGPU: two int64 comparisons (run on the CPU) copied to the GPU in one run both read the first one\'s result';

const webgpuAvailable = async (): Promise<string | true> => {
  const ok = await chromiumAvailable();
  if (ok !== true) return ok;
  const { webgpu } = await call('info');
  return webgpu ? true : 'Chromium has no WebGPU adapter here (navigator.gpu.requestAdapter() returned null)';
};

/**
 * Cases with a node that onnxruntime-web 1.30's WebGPU provider (JSEP) has no kernel for, so that a session with CPU
 * fallback disabled refuses them. Its kernels take int64 only as Gather / GatherElements / ScatterND indices (no
 * int64 Cast, Reshape, Unsqueeze, comparison or arithmetic), and it has no ScatterElements. (ScatterND's [..., 1]
 * indices of the embedding gradient are fed by the host as an input view: core/onnx/input-views.ts.)
 */
const OFF_GPU: Record<string, string> = {
  'two int64 comparisons': 'LessOrEqual and Equal on int64',
  'take_along_axis (ScatterElements backward)': 'ScatterElements (two indices per row: the backward is a scatter)',
};
const offGpu = (c: ConformanceCase) => Object.entries(OFF_GPU).find(([prefix]) => c.name.startsWith(prefix))?.[1];

/**
 * Browser wasm (2 threads: the page is cross-origin isolated); browser WebGPU (SwiftShader) with CPU fallback
 * disabled, so a node without a WebGPU kernel fails its case; and WebGPU with fallback for the cases that have one.
 */
export const BROWSER_RUNNERS: ConformanceRunner[] = [
  {
    name: 'onnxruntime-web wasm (chromium)',
    available: chromiumAvailable,
    make: ({ feedback }) => browserRunner('wasm', { feedback: { ...feedback }, numThreads: 2 }),
    close,
  },
  {
    name: 'onnxruntime-web webgpu (chromium, swiftshader)',
    available: webgpuAvailable,
    make: ({ feedback }) => browserRunner('webgpu', { feedback: { ...feedback } }),
    skip: (c) => {
      const node = offGpu(c);
      return node ? `refused with CPU fallback disabled: no WebGPU kernel for ${node}; run with fallback below` : undefined;
    },
    close,
  },
  {
    name: 'onnxruntime-web webgpu, CPU fallback (chromium, swiftshader)',
    available: webgpuAvailable,
    make: ({ feedback }) => browserRunner('webgpu', { feedback: { ...feedback }, cpuFallback: true }),
    skip: (c) => (offGpu(c) ? undefined : 'every node has a WebGPU kernel: the entry without fallback runs it'),
    known: (c) => (c.name === 'two int64 comparisons' ? INT64_COMPARE_DEFECT : undefined),
    close,
  },
  {
    // onnxruntime-web/webgpu, with CPU fallback allowed so that every case runs: it leaves the same nodes on the CPU
    // (int64 comparisons, ScatterElements), but computes the two int64 comparisons right. The conformance test checks
    // that both training steps have every node on its GPU.
    name: 'onnxruntime-web webgpu, native provider (chromium, swiftshader)',
    available: async () => {
      const ok = await webgpuAvailable();
      return ok === true ? callOn('native', 'info').then(({ webgpu }) => (webgpu ? true : 'no WebGPU adapter in the native build\'s page')) : ok;
    },
    make: ({ feedback }) => browserRunner('webgpu', { feedback: { ...feedback }, cpuFallback: true }, 'native'),
    close,
  },
];

export const pageInfo = () => call('info');
export const pageThreads = () => call('threads');
