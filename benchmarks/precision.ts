/**
 * bench:precision — what half-precision frozen weights (`precision.weights`) occupy: the resident bytes per parameter
 * of every base weight of the SmolLM2-135M shape (134.5M parameters, random weights), each figure measured in a
 * process of its own (core/memory/half-probe.ts: VmRSS after a full GC and malloc_trim, before and after):
 *
 * - read: a checkpoint folder (float32, float16 or bfloat16 safetensors, written once to a temp folder) read weight
 *   by weight through the trainer's loader in the run's storage format; float32 read as float32 is the baseline.
 *   B/param is the smaller growth of two passes (the second on top of the first), "1st pass" the first one's alone;
 *   peak is the growth of VmHWM during the first pass (a float32 checkpoint read into half precision holds one
 *   float32 tensor at a time beside what is kept, plus what the collector has not reclaimed yet).
 * - chunked: no file: each weight drawn into a reused float32 buffer and rounded (the storage alone).
 *
 *   bun run bench:precision          # about a minute on 2 cores; ~1.1 GB in the temp folder while it runs
 *
 * Prints a table and ends with one JSON line:
 *   {"rows":[{"case","bytes_per_param","first_pass_bytes_per_param","peak_bytes_per_param","vs_float32"}], "float16_bytes_per_param",
 *    "bfloat16_bytes_per_param", "bar": 2.05, "within_bar"}
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { HalfProbeResult, ProbeStorage } from '../core/memory/half-probe.ts';
import { runChild } from './lib/child.ts';

const ROOT = resolve(import.meta.dir, '..');
const PROBE = join(ROOT, 'core/memory/half-probe.ts');
const BAR = 2.05;

const probe = (args: string[]) => runChild<HalfProbeResult>(PROBE, args, '', { cwd: ROOT, quiet: true, label: `half-probe ${args.join(' ')}` });

const tmp = mkdtempSync(join(tmpdir(), 'tuneforge-bench-precision-'));
const started = performance.now();
try {
  const folders = new Map<ProbeStorage, string>();
  for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
    const dir = join(tmp, dtype);
    mkdirSync(dir);
    await runChild(PROBE, ['write', dir, dtype], '', { cwd: ROOT, quiet: true });
    folders.set(dtype, dir);
  }
  const cases: { name: string; args: string[] }[] = [
    { name: 'float32 checkpoint -> float32 (baseline)', args: ['read', folders.get('float32')!, 'float32'] },
    { name: 'float32 checkpoint -> float16', args: ['read', folders.get('float32')!, 'float16'] },
    { name: 'float32 checkpoint -> bfloat16', args: ['read', folders.get('float32')!, 'bfloat16'] },
    { name: 'float16 checkpoint -> float16', args: ['read', folders.get('float16')!, 'float16'] },
    { name: 'bfloat16 checkpoint -> bfloat16', args: ['read', folders.get('bfloat16')!, 'bfloat16'] },
    { name: 'in memory -> float16 (chunked)', args: ['chunked', 'float16'] },
    { name: 'in memory -> bfloat16 (chunked)', args: ['chunked', 'bfloat16'] },
  ];
  const results: { name: string; r: HalfProbeResult }[] = [];
  for (const c of cases) {
    const r = await probe(c.args);
    results.push({ name: c.name, r });
    console.error(`${c.name}: ${r.bytesPerParam.toFixed(3)} B/param`);
  }
  const baseline = results[0]!.r.bytesPerParam;
  const rows = results.map(({ name, r }) => ({
    case: name, bytes_per_param: +r.bytesPerParam.toFixed(4),
    first_pass_bytes_per_param: r.firstPassBytesPerParam === undefined ? null : +r.firstPassBytesPerParam.toFixed(4),
    peak_bytes_per_param: r.peakBytesPerParam === undefined ? null : +r.peakBytesPerParam.toFixed(4),
    vs_float32: +(r.bytesPerParam / baseline).toFixed(4),
  }));
  const header = ['case', 'B/param', '1st pass', 'peak B/param', 'vs float32'];
  const table = rows.map((r) => [r.case, r.bytes_per_param.toFixed(3), r.first_pass_bytes_per_param?.toFixed(3) ?? '-', r.peak_bytes_per_param?.toFixed(3) ?? '-', `${r.vs_float32.toFixed(3)}x`]);
  const w = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  console.log(`\nbench:precision — resident bytes per parameter of the SmolLM2-135M shape's base weights (${results[0]!.r.params.toLocaleString('en-US')} parameters), VmRSS growth after GC + malloc_trim`);
  console.log(line(header));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const t of table) console.log(line(t));
  const worst = (format: 'float16' | 'bfloat16') => Math.max(...results.filter(({ r }) => r.storage === format).map(({ r }) => r.bytesPerParam));
  const f16 = worst('float16'), bf16 = worst('bfloat16');
  console.log(`worst half-precision row: float16 ${f16.toFixed(3)}, bfloat16 ${bf16.toFixed(3)} B/param (bar ${BAR}); total ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  console.log(JSON.stringify({ rows, float16_bytes_per_param: +f16.toFixed(4), bfloat16_bytes_per_param: +bf16.toFixed(4), bar: BAR, within_bar: f16 <= BAR && bf16 <= BAR }));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
