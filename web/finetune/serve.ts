/**
 * The page's server: static files only, on loopback. Every URL it answers is in a table built at start (dist/'s
 * files, onnxruntime-web's wasm build under /ort/, the three model files under /model/), so a request path is never
 * joined onto a folder: `..`, encoded slashes and absolute paths cannot reach anything else, and are refused (404)
 * before the table is even consulted. COOP + COEP make the page cross-origin isolated, so wasm gets threads.
 *
 *   bun run web:finetune                   # builds, serves, prints the URL
 *   bun run web/finetune/serve.ts --port 8080 --model ../shared/models/stories260k
 */
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, resolve } from 'node:path';
import { buildPage, DIST } from './build.ts';

export const STORIES260K = resolve(import.meta.dir, '../../../shared/models/stories260k');
/** The model files the page fetches, under /model/. */
export const MODEL_FILES = ['config.json', 'tokenizer.json', 'model.safetensors'] as const;
/** onnxruntime-web files the page loads: its ES module and the wasm build (with the JSEP WebGPU backend) it starts. */
const ORT_FILE = /^(ort\.min\.mjs|ort-wasm-simd-threaded(\.jsep)?\.(mjs|wasm))$/;
const ISOLATED = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
  '.json': 'application/json', '.txt': 'text/plain; charset=utf-8', '.safetensors': 'application/octet-stream',
};

export interface SiteOptions {
  /** The built page (build.ts). Default web/finetune/dist. */
  dist?: string;
  /** A model folder holding MODEL_FILES. Default ../shared/models/stories260k. */
  model?: string;
}

/** URL path -> file, for every URL the server answers. */
export function siteTable(opts: SiteOptions = {}): Map<string, string> {
  const dist = opts.dist ?? DIST, model = opts.model ?? STORIES260K;
  if (!existsSync(join(dist, 'index.html'))) throw new Error(`${dist}/index.html is missing: build the page first (bun run web/finetune/build.ts)`);
  const missing = MODEL_FILES.filter((f) => !existsSync(join(model, f)));
  if (missing.length) throw new Error(`${model}: missing ${missing.join(', ')} (the page needs ${MODEL_FILES.join(', ')})`);
  const table = new Map<string, string>([['/', join(dist, 'index.html')]]);
  for (const f of readdirSync(dist)) if (statSync(join(dist, f)).isFile()) table.set(`/${f}`, join(dist, f));
  const ort = dirname(Bun.resolveSync('onnxruntime-web', import.meta.dir));
  for (const f of readdirSync(ort)) if (ORT_FILE.test(f)) table.set(`/ort/${f}`, join(ort, f));
  for (const f of MODEL_FILES) table.set(`/model/${f}`, join(model, f));
  return table;
}

/** Why a raw request path is refused outright, or undefined: dot segments, encoded separators, absolute forms. */
export function refusal(rawPath: string): string | undefined {
  if (!rawPath.startsWith('/') || rawPath.startsWith('//')) return 'not an origin-relative path';
  if (/%(2f|5c|00)/i.test(rawPath)) return 'an encoded slash, backslash or NUL';
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return 'malformed percent-encoding';
  }
  if (decoded.includes('\\') || /^\/[a-z]:/i.test(decoded)) return 'a backslash or a drive letter';
  if (decoded.split('/').some((seg) => seg === '..' || seg === '.')) return 'a dot segment';
  return undefined;
}

/** What the server sends: a status, headers, and a file or a short text. */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  file?: string;
  text?: string;
}

/**
 * Answers one request from the table (GET and HEAD only). `target` is the request-target as sent (node:http hands it
 * over unresolved, which is why this server is on node:http: Bun.serve resolves `..` before the handler sees it).
 */
export function answer(table: ReadonlyMap<string, string>, method: string, target: string): Answer {
  const plain = { 'content-type': 'text/plain; charset=utf-8' };
  if (method !== 'GET' && method !== 'HEAD') return { status: 405, headers: { ...plain, allow: 'GET, HEAD' }, text: 'method not allowed\n' };
  const path = target.split(/[?#]/, 1)[0]!;
  const why = refusal(path);
  const file = why ? undefined : table.get(path);
  if (!file) return { status: 404, headers: plain, text: `not found (${why ?? 'no such file'})\n` };
  const type = TYPES[extname(file)] ?? 'application/octet-stream';
  return { status: 200, headers: { ...ISOLATED, 'content-type': type, 'content-length': String(statSync(file).size), 'cache-control': 'no-store' }, file };
}

export interface PageServer {
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly origin: string;
  stop(): Promise<void>;
}

/** Serves the table on 127.0.0.1 (loopback: also a secure context, which WebGPU requires). Port 0: any free one. */
export async function servePage(opts: SiteOptions & { port?: number } = {}): Promise<PageServer> {
  const table = siteTable(opts);
  const server = createServer((req, res) => {
    const a = answer(table, req.method ?? 'GET', req.url ?? '/');
    res.writeHead(a.status, a.headers);
    if (a.file && req.method !== 'HEAD') createReadStream(a.file).on('error', () => res.destroy()).pipe(res);
    else res.end(req.method === 'HEAD' ? undefined : a.text);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const model = flag(args, '--model');
  const page = await buildPage();
  const server = await servePage({ port: Number(flag(args, '--port') ?? 8080), ...(model ? { model: resolve(model) } : {}) });
  console.log(`built web/finetune/dist (main.js ${(page.scriptBytes / 1024).toFixed(0)} KiB; data.txt: ${page.data})`);
  console.log(`serving on ${server.origin}/  (query: ?steps=60&backend=auto|wasm|webgpu&lines=40)`);
}
