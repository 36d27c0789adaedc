/** Paths and helpers shared by the data tests (not a test file itself). */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'bun:test';

export const REPO_ROOT = resolve(import.meta.dir, '..', '..');
export const SHARED = join(REPO_ROOT, '..', 'shared');
export const DATA = join(SHARED, 'data');
export const MODEL_DIR = join(SHARED, 'models', 'stories260k');

/** A test that needs the given files under ../shared; skipped, with the reason in its name, when one is absent. */
export function sharedTest(name: string, paths: readonly string[], fn: () => void | Promise<void>): void {
  const missing = paths.filter((p) => !existsSync(p));
  const label = missing.length === 0 ? name : `${name} [skipped: ${missing.join(', ')} absent]`;
  test.skipIf(missing.length > 0)(label, fn);
}

/** A fresh temporary folder (`<tmp>/data-XXXXXX`) with the given files; call `cleanup()` after. */
export function tempFiles(files: Readonly<Record<string, string>>): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'data-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Splits positions [from, to) into runs of equal `trained` state. */
export function runs(labels: readonly number[], from = 0, to = labels.length): { trained: boolean; start: number; end: number }[] {
  const out: { trained: boolean; start: number; end: number }[] = [];
  for (let t = from; t < to; t++) {
    const trained = labels[t] !== -100;
    const last = out[out.length - 1];
    if (last !== undefined && last.trained === trained) last.end = t + 1;
    else out.push({ trained, start: t, end: t + 1 });
  }
  return out;
}
