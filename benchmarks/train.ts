/**
 * bench:train — training tokens/s and peak memory (RSS) for full fine-tuning and LoRA (r 8 on q and v), against
 * PyTorch 1.13 on this machine's CPU (OpenBLAS, 2 threads, eager, same shapes), as measured for the issue:
 *   (a) stories260k, batch 16 x 64 tokens: full 5,774 tok/s, LoRA 8,149 tok/s, peak RSS ~380 MB
 *   (b) SmolLM2-135M shape, batch 4 x 256: full 80 tok/s, LoRA 99 tok/s, peak RSS 7.1 GB (full), 5.3 GB (LoRA)
 * Targets: >= 2x PyTorch's tokens/s in (a), >= 1.5x in (b), <= 60% of its peak memory in (b).
 * Each case runs in its own process. The SmolLM2-135M cases run again with train.optimizerOn 'device' (the update
 * as onnxruntime graphs, core/optim/device.ts), and both again with memory.arena (one onnxruntime arena for the
 * run's sessions, core/train/arena.ts; with 'device' the update is then fused into the step), so all are compared in
 * one run; `update s` is the median time of a step's clipping and update (0 where it is part of the step's graph).
 *
 *   bun run bench:train [--quick] [--mmap-threshold BYTES|off] [--no-device] [--no-arena]
 *
 * --mmap-threshold sets the trainer's memory.mmapThreshold (default 1 MiB; "off" keeps glibc's adaptive threshold,
 * faster on small models but with peaks above the memory plan: see core/memory/allocator.ts).
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { SMOLLM2_135M } from '../core/index.ts';
import { randomModelFolder, STORIES } from './lib/model-folder.ts';
import { benchOptions } from './lib/options.ts';
import { TRAIN_TAG, type TrainCase } from './lib/train-run.ts';
import { runChild } from './lib/child.ts';

const opts = benchOptions(['quick', 'mmap-threshold', 'no-device', 'no-arena']);
const quick = opts.string('quick') !== undefined;
const withDevice = opts.string('no-device') === undefined;
const withArena = opts.string('no-arena') === undefined;
const thresholdOption = opts.string('mmap-threshold');
const mmapThreshold = thresholdOption === undefined ? undefined : thresholdOption === 'off' ? false : Number(thresholdOption);
if (typeof mmapThreshold === 'number' && !(Number.isInteger(mmapThreshold) && mmapThreshold > 0)) throw new Error(`--mmap-threshold: a positive number of bytes or "off", got ${thresholdOption}`);
const PYTORCH = {
  a: { full_tok_s: 5774, lora_tok_s: 8149, full_peak_mb: 380, lora_peak_mb: 380 },
  b: { full_tok_s: 80, lora_tok_s: 99, full_peak_mb: 7.1 * 1024, lora_peak_mb: 5.3 * 1024 },
};

const run = (c: TrainCase) =>
  runChild<{ name: string; tok_s: number; step_s: number; update_s: number; peak_mb: number; predicted_mb: number }>(join(import.meta.dir, 'lib/train-run.ts'), [JSON.stringify(c)], TRAIN_TAG, { label: `case ${c.name}` });

const smol = await randomModelFolder(join(tmpdir(), 'tuneforge-smollm2-135m-random'), SMOLLM2_135M);
const results: Record<string, Record<string, number>> = { a: {}, b: {} };
const rows: string[][] = [];
for (const [key, model, B, T, steps] of [['a', STORIES, 16, 64, quick ? 8 : 25], ['b', smol, 4, 256, quick ? 3 : 5]] as const) {
  for (const method of ['full', 'lora'] as const) {
    for (const optimizerOn of key === 'b' && withDevice ? ['host', 'device'] as const : ['host'] as const) {
      for (const arena of key === 'b' && withArena ? [false, true] : [false]) {
        const suffix = `${optimizerOn === 'device' ? '_device' : ''}${arena ? '_arena' : ''}`;
        const r = await run({ name: `${key}-${method}${suffix}`, model, method, B, T, steps, optimizerOn, arena, ...(mmapThreshold !== undefined ? { mmapThreshold } : {}) });
        const ref = PYTORCH[key];
        results[key]![`${method}${suffix}_tok_s`] = Math.round(r.tok_s);
        results[key]![`${method}${suffix}_peak_mb`] = Math.round(r.peak_mb);
        results[key]![`${method}${suffix}_update_s`] = Number(r.update_s.toFixed(3));
        const refTok = ref[`${method}_tok_s`], refMb = ref[`${method}_peak_mb`];
        const how = [optimizerOn === 'device' ? 'optimizer on device' : '', arena ? 'shared arena' : ''].filter(Boolean).join(', ');
        rows.push([`(${key}) ${key === 'a' ? 'stories260k 16x64' : 'SmolLM2-135M 4x256'} ${method}${how ? `, ${how}` : ''}`, r.tok_s.toFixed(0), refTok.toString(), `${(r.tok_s / refTok).toFixed(2)}x`,
          r.update_s.toFixed(3), r.peak_mb.toFixed(0), refMb.toFixed(0), `${((100 * r.peak_mb) / refMb).toFixed(0)}%`, r.predicted_mb.toFixed(0)]);
        console.error(`done ${key}-${method}${suffix}: ${r.tok_s.toFixed(0)} tok/s, update ${r.update_s.toFixed(3)} s, peak ${r.peak_mb.toFixed(0)} MB`);
      }
    }
  }
}
const head = ['case', 'tok/s', 'PyTorch', 'speed', 'update s', 'peak MB', 'PyTorch MB', 'memory', 'predicted MB'];
const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
console.log(`bench:train (tokens/s and peak RSS; PyTorch 1.13 CPU reference figures from the issue; memory.mmapThreshold ${mmapThreshold === undefined ? 'default' : String(mmapThreshold)})`);
for (const r of [head, ...rows]) console.log(`  ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')}`);
console.log(JSON.stringify(results));
