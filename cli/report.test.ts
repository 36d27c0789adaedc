/**
 * `tuneforge report` in child processes, as a user runs it: one run writes RUN/report.html (or --out) and prints the
 * path; several runs write one comparison (./report.html unless --out, said on stderr); a path that is not a folder
 * and a folder without metrics.jsonl fail with exit 1 and say so; no RUN at all is a usage error (exit 2).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeSyntheticRun } from '../core/report/html.fixture.ts';

const MAIN = resolve(import.meta.dir, 'main.ts');
const ROOT = realpathSync(mkdtempSync(join(tmpdir(), 'tuneforge-report-cli-')));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

async function cli(args: string[], cwd = ROOT): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = Bun.spawn([process.execPath, 'run', MAIN, ...args], { cwd, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, NO_COLOR: '1' } });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

describe('tuneforge report', () => {
  const a = writeSyntheticRun(join(ROOT, 'runs', 'lora'), { steps: 120 });
  const b = writeSyntheticRun(join(ROOT, 'runs', 'prefix'), { steps: 100, seed: 2 });

  test('one run: writes RUN/report.html, or --out, and prints the path', async () => {
    const r = await cli(['report', 'runs/lora']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(join(a, 'report.html'));
    expect(readFileSync(join(a, 'report.html'), 'utf8')).toContain('data-chart="loss"');

    const out = await cli(['report', a, '--out', 'reports/lora.html']);
    expect(out.code).toBe(0);
    expect(out.stdout.trim()).toBe(join(ROOT, 'reports', 'lora.html'));
    expect(readFileSync(join(ROOT, 'reports', 'lora.html'), 'utf8')).toContain('<title>tuneforge report: lora</title>');
  }, 20_000);

  test('several runs: one overlaid report at ./report.html by default, or --out', async () => {
    const r = await cli(['report', 'runs/lora', 'runs/prefix']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('no --out given: writing the comparison of 2 runs to ./report.html');
    expect(r.stdout.trim()).toBe(join(ROOT, 'report.html'));
    expect(readFileSync(join(ROOT, 'report.html'), 'utf8')).toContain('<title>tuneforge report: lora vs prefix</title>');

    const out = await cli(['report', a, b, '--out', join(ROOT, 'cmp.html')]);
    expect(out.code).toBe(0);
    expect(out.stderr).toBe('');
    expect(existsSync(join(ROOT, 'cmp.html'))).toBe(true);
  }, 20_000);

  test('errors: not a folder, not a run folder, no RUN', async () => {
    mkdirSync(join(ROOT, 'not-a-run'));
    writeFileSync(join(ROOT, 'file.txt'), 'hello');
    const [missing, file, notRun, none] = await Promise.all([
      cli(['report', 'runs/nowhere']),
      cli(['report', 'file.txt']),
      cli(['report', 'runs/lora', 'not-a-run']),
      cli(['report']),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('report failed: runs/nowhere is not a folder');
    expect(file.code).toBe(1);
    expect(file.stderr).toContain('report failed: file.txt is not a folder');
    expect(notRun.code).toBe(1);
    expect(notRun.stderr).toContain('report failed: not-a-run is not a run folder: no metrics.jsonl');
    expect(notRun.stdout).toBe('');
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('report: missing RUN');
    expect(none.stderr).toContain('usage: tuneforge report RUN [RUN...] [--out FILE]');
  }, 20_000);
});
