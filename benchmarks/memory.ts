/**
 * bench:memory — how well the memory planner predicts the peak resident memory of real training runs.
 *
 * Each case trains a few steps with `train()` in its own process (benchmarks/lib/memory-run.ts), so each measured peak
 * (Linux VmHWM after training) belongs to that run alone, and compares it with the planner's prediction
 * (`planMemory`) for the same config. Every example of the synthetic dataset is exactly T tokens (packed text), so
 * each micro-batch is the planned worst case B x T. AdamW, no eval, no export; the final checkpoint is written.
 *
 * Models: stories260k (../shared/models/stories260k; skipped with a note when absent) and a SmolLM2-135M-shaped model
 * with random weights (written once to a temp folder, with the stories260k tokenizer).
 * Methods (memory-run.ts, MEMORY_METHODS): full (fullFinetune), lora (r 8, alpha 16, q_proj + v_proj), qlora (that
 * LoRA on an NF4 base), int8+lora (that LoRA on an int8 base, one scale per row), lisa (2 layers active, a switch
 * every 2 steps, 4 steps), zo (full-parameter ZO-SGD, MeZO) and
 * forward-grad (Forward-Grad on the LoRA adapters, AdamW); then the PEFT techniques (NEWER_METHODS): adalora (PEFT's
 * defaults on q_proj + v_proj, masking from the first step), adapters-series and adapters-parallel (bottleneck
 * adapters, LLM-Adapters' defaults), prefix (prefix tuning, 20 virtual tokens), prompt (prompt tuning, 20), p-tuning-mlp
 * and p-tuning-lstm (P-tuning, 20, PEFT's MLP or LSTM encoder). zo and forward-grad replace backpropagation with their
 * own estimator, so they have no checkpointed rows.
 * Matrix (B x T; "off, on" = checkpointing):
 *   stories260k  {full, lora} x {off, on} x {4x64, 16x128, 16x256}
 *   SmolLM2-135M {full, lora} x {off, on} x {1x128, 4x256}
 *   SmolLM2-135M full 4x512, off and on (the factor by which checkpointing lowers the measured peak)
 *   the later plugins: SmolLM2-135M 4x256 {qlora, lisa} x {off, on} and {zo, forward-grad} off;
 *                      stories260k 16x128 {qlora, lisa, zo, forward-grad}, off
 *   SmolLM2-135M qlora 1x16, off (a batch so small that loading the model could set the peak)
 *   SmolLM2-135M int8+lora 4x256, off (8-bit frozen weights; `--only int8`)
 *   Qwen3-30B-A3B cut to 1 layer (real per-layer shapes and vocabulary, random weights) lora 1x256, off and on: a
 *                      mixture of experts, whose 128 dense-computed experts make most of the step's activations
 *   the PEFT techniques: stories260k 16x128 and SmolLM2-135M 4x256, each {adalora, adapters-series,
 *                      adapters-parallel, prefix, prompt, p-tuning-mlp, p-tuning-lstm} x {off, on}
 *   half-precision frozen weights (precision.weights): SmolLM2-135M lora 4x256, off, with a float16 and a bfloat16
 *                      base ("smollm2-135m lora 4x256 float16" / "bfloat16"; --only float16 picks one)
 *
 *   bun run bench:memory                 # everything (about 23 minutes on 2 cores: the later plugins' 10 rows about 4,
 *                                        # the PEFT techniques' 28 about 13; the 4x512 run needs ~8 GB)
 *   bun run bench:memory --only stories  # cases whose name contains a string ("lora" also picks the qlora and adalora
 *                                        # rows; "135m lora" only LoRA's, "qwen3-30b" the MoE rows, "qlora", "lisa", "zo", "forward-grad",
 *                                        # "adalora", "prefix", "prompt" one method; "adapters" and "p-tuning" two)
 *   bun run bench:memory --steps 2       # optimizer steps per run (default 3; LISA's rows 4)
 *   bun run bench:memory --verbose       # also each plan's items and the RSS and peak after every step
 *   bun run bench:memory --mmap-threshold 131072   # glibc's mmap threshold for the runs (MALLOC_MMAP_THRESHOLD_, which
 *                                                  # overrides the trainer's memory.mmapThreshold, default 1 MiB)
 *
 * Prints a table (name, predicted MB, measured MB, error = predicted / measured - 1) and ends with one JSON line:
 *   {"rows":[{"name","predicted_mb","measured_mb","error"}], "max_abs_error", "checkpointing_factor_smollm_4x512"}
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseConfig, randomWeights, realConfig, SMOLLM2_135M, writeSafetensors, type RawConfig } from '../core/index.ts';
import { LISA_ROW_STEPS, NEWER_METHODS, RESULT_TAG, supportsCheckpointing, type MemoryCase, type MemoryMethod, type MemoryResult } from './lib/memory-run.ts';
import { runChild } from './lib/child.ts';

const ROOT = resolve(import.meta.dir, '..');
const STORIES = resolve(ROOT, '../shared/models/stories260k');
const RUNNER = join(import.meta.dir, 'lib', 'memory-run.ts');
const MB = 2 ** 20;

function option(name: string): string | undefined {
  const argv = process.argv.slice(2);
  const i = argv.indexOf(`--${name}`);
  if (i >= 0) return argv[i + 1];
  return argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}
/** Optimizer steps per run. The second step is the first whose run has the optimizer state beside it; later steps
 * add the allocator's slack (freed memory glibc keeps and reuses imperfectly), which levels off after a few. */
const stepsOption = option('steps');
const stepsFor = (_model: string) => Number(stepsOption ?? 3);
const verbose = process.argv.includes('--verbose');
const mmapThreshold = option('mmap-threshold');
const only = option('only');

/** A SmolLM2-135M-shaped model folder with random weights and the stories260k tokenizer. */
async function smolModel(dir: string, raw: RawConfig = SMOLLM2_135M): Promise<string> {
  const config = parseConfig(raw);
  await writeSafetensors(join(dir, 'model.safetensors'), randomWeights(config, 0));
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(raw, null, 2)}\n`);
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    if (existsSync(join(STORIES, f))) copyFileSync(join(STORIES, f), join(dir, f));
  }
  return dir;
}

function runCase(c: MemoryCase): Promise<MemoryResult> {
  const env = { ...process.env, ...(mmapThreshold ? { MALLOC_MMAP_THRESHOLD_: mmapThreshold } : {}) };
  return runChild<MemoryResult>(RUNNER, [JSON.stringify(c)], RESULT_TAG, { cwd: ROOT, env, quiet: true, label: c.name });
}

const cases: MemoryCase[] = [];
const haveStories = existsSync(join(STORIES, 'model.safetensors'));
if (!haveStories) console.warn(`stories260k cases skipped: ${STORIES} is absent (the SmolLM2-135M cases need its tokenizer too)`);
const tmp = mkdtempSync(join(tmpdir(), 'tuneforge-bench-memory-'));
const started = performance.now();
try {
  const push = (model: string, label: string, method: MemoryMethod, checkpointing: boolean, B: number, T: number) => {
    cases.push({ name: `${label} ${method} ${checkpointing ? 'ckpt' : 'plain'} ${B}x${T}`, model, method, checkpointing, B, T, steps: method === 'lisa' && !stepsOption ? LISA_ROW_STEPS : stepsFor(model) });
  };
  const add = (model: string, label: string, shapes: [number, number][]) => {
    for (const method of ['full', 'lora'] as const) {
      for (const checkpointing of [false, true]) {
        for (const [B, T] of shapes) push(model, label, method, checkpointing, B, T);
      }
    }
  };
  /** The later plugins at one shape: checkpointing off, and on where the method backpropagates. */
  const later = (model: string, label: string, [B, T]: [number, number], withCheckpointing: boolean) => {
    for (const method of ['qlora', 'lisa', 'zo', 'forward-grad'] as const) {
      for (const checkpointing of withCheckpointing && supportsCheckpointing(method) ? [false, true] : [false]) push(model, label, method, checkpointing, B, T);
    }
  };
  /** The PEFT techniques added after them, at one shape, checkpointing off and on (all of them backpropagate). */
  const newer = (model: string, label: string, [B, T]: [number, number]) => {
    for (const method of NEWER_METHODS) {
      for (const checkpointing of supportsCheckpointing(method) ? [false, true] : [false]) push(model, label, method, checkpointing, B, T);
    }
  };
  if (haveStories) {
    add(STORIES, 'stories260k', [[4, 64], [16, 128], [16, 256]]);
    const smol = await smolModel(mkdtempSync(join(tmp, 'smollm2-135m-')));
    add(smol, 'smollm2-135m', [[1, 128], [4, 256]]);
    for (const checkpointing of [false, true]) push(smol, 'smollm2-135m', 'full', checkpointing, 4, 512);
    later(STORIES, 'stories260k', [16, 128], false);
    later(smol, 'smollm2-135m', [4, 256], true);
    // A tiny batch, where loading the model rather than the step could set the peak (the float32 base is never
    // resident under QLoRA: each weight is read, quantised and dropped).
    push(smol, 'smollm2-135m', 'qlora', false, 1, 16);
    push(smol, 'smollm2-135m', 'int8+lora', false, 4, 256);
    newer(STORIES, 'stories260k', [16, 128]);
    newer(smol, 'smollm2-135m', [4, 256]);
    // The LoRA row with its frozen base in half precision (core/train/precision.ts).
    for (const precision of ['float16', 'bfloat16'] as const) {
      cases.push({ name: `smollm2-135m lora 4x256 ${precision}`, model: smol, method: 'lora', checkpointing: false, B: 4, T: 256, steps: stepsFor(smol), precision });
    }
  }
  // Qwen3-30B-A3B's real config cut to its first layer (128 experts of 768, top 8; vocabulary 151,936): 1.25B
  // parameters, 4.6 GiB of float32. Its weights (~1 minute to draw and write) only when one of its rows runs.
  const moe = join(tmp, 'qwen3-30b-a3b-1layer');
  const moeRaw = realConfig('qwen3-30b-a3b', { layers: 1 });
  if (haveStories) for (const checkpointing of [false, true]) push(moe, 'qwen3-30b-a3b-1layer', 'lora', checkpointing, 1, 256);
  const chosen = cases.filter((c) => !only || c.name.includes(only));
  if (chosen.some((c) => c.model === moe)) await smolModel(mkdirSync(moe, { recursive: true }) ?? moe, moeRaw);
  const results: MemoryResult[] = [];
  for (const c of chosen) {
    const r = await runCase(c);
    results.push(r);
    const err = r.predictedBytes / r.measuredBytes - 1;
    console.error(`${c.name}: predicted ${(r.predictedBytes / MB).toFixed(0)} MB, measured ${(r.measuredBytes / MB).toFixed(0)} MB (${(100 * err).toFixed(1)}%), ${r.seconds.toFixed(0)} s`);
    if (verbose) {
      for (const i of r.items) console.error(`    ${i.component.padEnd(48)} ${(i.bytes / MB).toFixed(1).padStart(8)} MB  ${i.note ?? ''}`);
      console.error(`    steps (RSS after / peak so far, MB): ${r.steps.map((s) => `${s.rss_mb.toFixed(0)}/${s.peak_rss_mb.toFixed(0)}`).join(', ')}`);
    }
  }

  const rows = results.map((r) => ({
    name: r.name, predicted_mb: +(r.predictedBytes / MB).toFixed(1), measured_mb: +(r.measuredBytes / MB).toFixed(1),
    error: +(r.predictedBytes / r.measuredBytes - 1).toFixed(4),
  }));
  const header = ['case', 'predicted MB', 'measured MB', 'error'];
  const table = rows.map((r) => [r.name, r.predicted_mb.toFixed(0), r.measured_mb.toFixed(0), `${(100 * r.error).toFixed(1)}%`]);
  const w = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  console.log(`\nbench:memory — predicted peak (planMemory) vs measured peak RSS (VmHWM) of ${stepsFor('')}-step runs (LISA ${stepsOption ?? LISA_ROW_STEPS}), AdamW, MB = 2^20 bytes${mmapThreshold ? `, MALLOC_MMAP_THRESHOLD_=${mmapThreshold}` : ''}`);
  console.log(line(header));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const t of table) console.log(line(t));
  const maxAbs = rows.length ? Math.max(...rows.map((r) => Math.abs(r.error))) : null;
  const off = results.find((r) => r.name === 'smollm2-135m full plain 4x512');
  const on = results.find((r) => r.name === 'smollm2-135m full ckpt 4x512');
  const factor = off && on ? +(off.measuredBytes / on.measuredBytes).toFixed(3) : null;
  if (maxAbs !== null) console.log(`max |error| ${(100 * maxAbs).toFixed(1)}%${factor ? `; checkpointing lowers the SmolLM2-135M 4x512 full fine-tuning peak ${factor}x` : ''}`);
  console.log(`total ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  console.log(JSON.stringify({ rows, max_abs_error: maxAbs === null ? null : +maxAbs.toFixed(4), checkpointing_factor_smollm_4x512: factor }));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
