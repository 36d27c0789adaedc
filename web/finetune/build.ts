/**
 * Builds the fine-tuning page into web/finetune/dist: index.html, main.js (main.ts bundled by Bun.build for the
 * browser; onnxruntime-web left external, served beside it) and data.txt (the lines it trains on).
 *
 *   bun run web/finetune/build.ts          # or `bun run web:finetune`, which also serves it
 *
 * The bundle must hold no Node code. Three things make that so, and the build checks it:
 * - core/compile.ts imports onnxruntime-node (its default runner) and its external-data writer (node:fs) only
 *   dynamically, when used; the page always passes its runner and its weights are far below the external-data
 *   threshold, so those two imports (and allocator.ts's `bun:ffi`, reached only under Bun) stay unbundled;
 * - plugins import core through its barrel (core/index.ts), which also carries the trainer, the Hub client and
 *   onnxruntime-node: here it resolves to shims/core-api.ts, the barrel's graph-building part;
 * - plugins/peft/folder.ts (adapter folders on disk, for the lora plugin's `export:artifacts`) resolves to
 *   shims/peft-folder.ts, which refuses.
 * Any other import of a Node or Bun builtin, or of onnxruntime-node, fails the build with the importing file named.
 */
import { builtinModules } from 'node:module';
import { mkdir, rm, writeFile, copyFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import type { BunPlugin } from 'bun';

const HERE = import.meta.dir;
const ROOT = resolve(HERE, '../..');
export const DIST = join(HERE, 'dist');
/** The text the page fine-tunes on, when ../shared is there. */
export const TINY_STORIES = resolve(ROOT, '../shared/data/tinystories/tiny_stories.txt');
/** Lines of it copied into data.txt. */
export const DATA_LINES = 300;

/** Dynamic imports the page never takes (see the module comment), left out of the bundle: importer -> specifiers. */
const LAZY_NODE_ONLY: Readonly<Record<string, readonly string[]>> = {
  'core/compile.ts': ['../runners/ort-node.ts', './onnx/external-data.ts'],
  'core/memory/allocator.ts': ['bun:ffi'],
  'core/optim/device.ts': ['../../runners/ort-node.ts'], // its default runner; the page passes its own
};
/** Modules replaced in the bundle: the file a specifier resolves to -> its browser stand-in. */
const SHIMS: Readonly<Record<string, string>> = {
  'core/index.ts': 'web/finetune/shims/core-api.ts',
  'plugins/peft/folder.ts': 'web/finetune/shims/peft-folder.ts',
};

const NODE_ONLY = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`), 'onnxruntime-node']);
const isNodeOnly = (spec: string) => NODE_ONLY.has(spec) || spec.startsWith('node:') || spec.startsWith('bun:') || spec === 'bun';
const rel = (path: string) => relative(ROOT, path);

/** Applies LAZY_NODE_ONLY and SHIMS; records every other Node-only import in `refused`. */
function browserOnly(refused: string[]): BunPlugin {
  return {
    name: 'tuneforge-browser-only',
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        const importer = rel(args.importer);
        if (args.kind === 'dynamic-import' && LAZY_NODE_ONLY[importer]?.includes(args.path)) return { path: args.path, external: true };
        if (isNodeOnly(args.path)) {
          refused.push(`${importer} imports '${args.path}'`);
          return { path: args.path, external: true };
        }
        if (!args.path.startsWith('.')) return undefined;
        const shim = SHIMS[rel(resolve(dirname(args.importer), args.path))];
        return shim ? { path: join(ROOT, shim) } : undefined;
      });
    },
  };
}

/** The first `lines` non-empty lines of TinyStories, or a few built-in ones when ../shared is absent. */
function dataText(lines: number): { text: string; source: string } {
  if (existsSync(TINY_STORIES)) {
    const kept = readFileSync(TINY_STORIES, 'utf8').split('\n').filter((l) => l.trim()).slice(0, lines);
    return { text: `${kept.join('\n')}\n`, source: `${kept.length} lines of ${rel(TINY_STORIES)}` };
  }
  return { text: readFileSync(join(HERE, 'builtin-data.txt'), 'utf8'), source: 'web/finetune/builtin-data.txt (../shared is absent)' };
}

export interface BuiltPage {
  dist: string;
  /** Bytes of main.js. */
  scriptBytes: number;
  /** Where data.txt came from. */
  data: string;
}

/** Bundles `entry` for the browser (onnxruntime-web left external). Throws listing every Node-only import it would hold. */
export async function bundleForBrowser(entry: string, opts: { minify?: boolean } = {}): Promise<string> {
  const refused: string[] = [];
  const nodeOnly = () => new Error(`the page's bundle would hold Node-only code:\n  ${[...new Set(refused)].join('\n  ')}`);
  let built: Awaited<ReturnType<typeof Bun.build>>;
  try {
    built = await Bun.build({
      entrypoints: [entry],
      target: 'browser',
      format: 'esm',
      minify: opts.minify ?? true,
      external: ['onnxruntime-web'], // served from its dist folder (index.html's import map)
      plugins: [browserOnly(refused)],
    });
  } catch (e) {
    // Node-only modules often fail to bundle on their own (missing browser exports): the refusals say why.
    throw refused.length ? nodeOnly() : e;
  }
  if (refused.length) throw nodeOnly();
  if (!built.success) throw new Error(`bundling ${rel(entry)} failed:\n${built.logs.map(String).join('\n')}`);
  return built.outputs[0]!.text();
}

/** Bundles the page and writes dist/ (replacing it). */
export async function buildPage(opts: { minify?: boolean } = {}): Promise<BuiltPage> {
  const script = await bundleForBrowser(join(HERE, 'main.ts'), opts);
  await rm(DIST, { recursive: true, force: true });
  await mkdir(DIST, { recursive: true });
  await writeFile(join(DIST, 'main.js'), script);
  await copyFile(join(HERE, 'index.html'), join(DIST, 'index.html'));
  const data = dataText(DATA_LINES);
  await writeFile(join(DIST, 'data.txt'), data.text);
  return { dist: DIST, scriptBytes: script.length, data: data.source };
}

if (import.meta.main) {
  const page = await buildPage();
  console.log(`built ${rel(page.dist)}/ (main.js ${(page.scriptBytes / 1024).toFixed(0)} KiB; data.txt: ${page.data})`);
}
