/**
 * bench:models — throughput of real model shapes on the CPU runner, and for the real-config rows the memory planner's
 * prediction against the measured peak of a training run.
 *
 * stories260k: the real weights from ../shared/models/stories260k (skipped, with a note, when absent).
 * smollm2_135m: SmolLM2-135M's configuration with random weights (same shapes and FLOPs as the real model).
 *
 * forward:  logits for a batch × seq block of tokens, weights resident; warm-up, then the median of several runs of
 *           `exe.run` alone (feeds built beforehand). tok/s = batch × seq / seconds.
 * generate: greedy decoding of NEW_TOKENS tokens after a 1-token prompt (no stop tokens), through createGenerator;
 *           the cached path (one token per step against a fixed-size KV cache) and, for stories260k, the uncached
 *           path (full forward pass over the maxLen-padded sequence per token) with the same maxLen.
 *           tok/s = new tokens / seconds of the whole generate() call (median of several).
 *
 * Real configs (core/models/configs: the checkpoints' own config.json; random weights, seed 0, the stories260k
 * tokenizer, whose ids fit every vocabulary; skipped when ../shared is absent). Cut to their first layers where the
 * whole model would not fit or take too long on 2 cores and 24 GiB: a cut keeps every layer's real shapes and the
 * vocabulary. qwen3-0.6b and gemma-3-270m whole; phi-4-mini 4 of 32 layers (the whole model is 15 GB of float32
 * weights); qwen3-30b-a3b 1 of 48 (128 experts, computed densely: that one layer with its vocabulary is 1.25B
 * parameters). Sequences are 256 tokens, batch 1, so the four rows take about 7 of the run's 9 minutes.
 * forward:  1×256 logits as above, but the weights fed on every run, as the trainer feeds them (resident
 *           initializers would also go through compile's external-data file, which truncates a tensor above 2 GiB
 *           such as Phi-4-mini's 200,064-row embedding: Linux writes at most 2 GiB per write call).
 * train:    LoRA r 8, alpha 16 on every linear layer but the head ("all-linear": Phi-4-mini fuses q, k and v into one
 *           qkv_proj, so q,v alone does not exist on every row; on Qwen3-30B-A3B the router and all experts are
 *           adapted), AdamW, batch 1 × 256 tokens of packed text, --steps steps through train() in a child process
 *           (benchmarks/lib/memory-run.ts, bench:memory's runner). tok/s = 256 / the median step time after the
 *           first step (which compiles the sessions).
 * memory:   planned = the plan the trainer made and followed (createPlanner over the run's tokenised data; for
 *           Qwen3-30B-A3B it lowers glibc's mmap threshold to 512 KiB, below the experts' tensors, and the trainer
 *           applies it); measured = the child's peak RSS (VmHWM) after training; error = planned / measured - 1,
 *           bar ±10%.
 *
 *   bun run bench:models                    # everything, ~9 minutes on 2 cores
 *   bun run bench:models --only qwen3-30b   # the rows whose model name contains a string (stories260k, smollm2_135m,
 *                                           # qwen3-0.6b, gemma-3-270m, phi-4-mini, qwen3-30b-a3b; "qwen3" two of them)
 *   bun run bench:models --steps 4          # training steps per real-config row (default 3, at least 2)
 *   bun run bench:models --verbose          # also the trainer's plan items and each step's RSS, peak and time
 *
 * Measured with `nice -n 5 bun run bench:models` while another benchmark kept both cores busy (so every tok/s is
 * lower than on an idle machine: stories260k forward 8.6k tok/s against 48k idle), 3 steps:
 *   model                           params  forward tok/s  train tok/s  planned MB  measured MB  error
 *   qwen3-0.6b (all 28 layers)        596M           89.9         27.5        3933         3964  -0.8%
 *   gemma-3-270m (all 18 layers)      268M            108         37.5        2510         2511  -0.1%
 *   phi-4-mini (4 of 32 layers)      1017M           51.9         16.6        4868         4950  -1.6%
 *   qwen3-30b-a3b (1 of 48 layers)   1245M           34.3         14.4        6839         6885  -0.7%
 * The table prints; the last line is one JSON object with every figure.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compile, parameterCount, parseConfig, randomWeights, realConfig, SMOLLM2_135M, trace, type HostTensor, type ModelConfig, type RealConfigName,
} from '../core/index.ts';
import { createGenerator } from '../core/generate/generator.ts';
import { buildCausalLM } from '../core/models/llama.ts';
import { loadModel } from '../core/models/load.ts';
import { runChild } from './lib/child.ts';
import { RESULT_TAG, type MemoryCase, type MemoryMethod, type MemoryResult } from './lib/memory-run.ts';
import { randomModelFolder, STORIES } from './lib/model-folder.ts';
import { benchOptions } from './lib/options.ts';

const options = benchOptions(['only', 'steps', 'verbose'], 'MODELS');
/** Rows whose model name contains this string (stories260k, smollm2_135m, qwen3-0.6b, gemma-3-270m, phi-4-mini, qwen3-30b-a3b). */
const only = options.string('only');
const wanted = (model: string) => only === undefined || model.includes(only);
/** Training steps per real-config row: the first compiles, the others give the step time. */
const TRAIN_STEPS = options.number('steps') ?? 3;
if (!Number.isInteger(TRAIN_STEPS) || TRAIN_STEPS < 2) throw new Error(`--steps: at least 2 (the first compiles), got ${TRAIN_STEPS}`);
const verbose = options.string('verbose') !== undefined;
const NEW_TOKENS = 64;
const GEN_MAX_LEN = 128;

async function median(warmup: number, runs: number, fn: () => Promise<number>): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await fn());
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

/** Deterministic token ids in [2, vocab). */
function tokens(n: number, vocab: number): BigInt64Array {
  return BigInt64Array.from({ length: n }, (_, i) => BigInt(2 + ((i * 7919 + 17) % (vocab - 2))));
}

/** `resident`: the weights become initializers of the session; else they are fed on every run, as the trainer feeds them. */
async function forwardTokS(c: ModelConfig, weights: Map<string, HostTensor>, batch: number, seq: number, warmup: number, runs: number, resident = true): Promise<{ tokS: number; seconds: number; compileS: number }> {
  const graph = trace((g) => ({ logits: buildCausalLM(g, c, { batch, seq }).logits }));
  const t0 = performance.now();
  const exe = await compile(graph, resident ? { resident: weights } : {});
  const compileS = (performance.now() - t0) / 1000;
  const feeds: Record<string, HostTensor> = {
    input_ids: { dtype: 'int64', shape: [batch, seq], data: tokens(batch * seq, c.vocabSize) },
    ...(resident ? {} : Object.fromEntries(weights)),
  };
  let check = 0;
  const seconds = await median(warmup, runs, async () => {
    const t = performance.now();
    const out = await exe.run(feeds);
    const s = (performance.now() - t) / 1000;
    check += (out.logits!.data as Float32Array)[0]!;
    return s;
  });
  await exe.release();
  if (!Number.isFinite(check)) throw new Error('non-finite logits');
  return { tokS: (batch * seq) / seconds, seconds, compileS };
}

async function generateTokS(c: ModelConfig, weights: Map<string, HostTensor>, cache: boolean, warmup: number, runs: number): Promise<{ tokS: number; seconds: number; compileS: number }> {
  const t0 = performance.now();
  const gen = await createGenerator({ config: c, weights, maxLen: GEN_MAX_LEN, cache });
  const compileS = (performance.now() - t0) / 1000;
  const prompt = [c.bosTokenId ?? 1];
  const seconds = await median(warmup, runs, async () => {
    const t = performance.now();
    const out = await gen.generate(prompt, { maxNewTokens: NEW_TOKENS });
    const s = (performance.now() - t) / 1000;
    if (out.length !== NEW_TOKENS) throw new Error(`generated ${out.length} tokens, expected ${NEW_TOKENS}`);
    return s;
  });
  await gen.release();
  return { tokS: NEW_TOKENS / seconds, seconds, compileS };
}

const rows: [string, string, string][] = [];
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const result: Record<string, Record<string, number>> = {};
const started = performance.now();

const haveStories = existsSync(join(STORIES, 'model.safetensors'));
if (!wanted('stories260k')) {
  // not asked for
} else if (haveStories) {
  const { config, weights } = await loadModel(STORIES);
  const fwd = await forwardTokS(config, weights, 16, 256, 3, 11);
  rows.push(['stories260k', 'forward 16x256 (logits)', `${fmt(fwd.tokS)} tok/s  (${(fwd.seconds * 1000).toFixed(1)} ms/run)`]);
  const gen = await generateTokS(config, weights, true, 2, 7);
  rows.push(['stories260k', `generate greedy, cached, ${NEW_TOKENS} new, maxLen ${GEN_MAX_LEN}`, `${fmt(gen.tokS)} tok/s  (${(1000 / gen.tokS).toFixed(2)} ms/token)`]);
  const plain = await generateTokS(config, weights, false, 1, 5);
  rows.push(['stories260k', `generate greedy, uncached, ${NEW_TOKENS} new, maxLen ${GEN_MAX_LEN}`, `${fmt(plain.tokS)} tok/s  (${(1000 / plain.tokS).toFixed(2)} ms/token)`]);
  result.stories260k = { forward_tok_s: +fwd.tokS.toFixed(1), generate_tok_s: +gen.tokS.toFixed(1), generate_uncached_tok_s: +plain.tokS.toFixed(1) };
} else {
  console.warn(`stories260k skipped: ${STORIES} is absent`);
}

if (wanted('smollm2_135m')) {
  const config = parseConfig(SMOLLM2_135M);
  const weights = randomWeights(config, 0);
  const params = parameterCount(config);
  const b1 = await forwardTokS(config, weights, 1, 256, 2, 9);
  rows.push(['smollm2_135m', `forward 1x256 (logits)  [${(params / 1e6).toFixed(1)}M params, random]`, `${fmt(b1.tokS)} tok/s  (${(b1.seconds * 1000).toFixed(0)} ms/run, compile ${b1.compileS.toFixed(1)} s)`]);
  const b4 = await forwardTokS(config, weights, 4, 256, 2, 7);
  rows.push(['smollm2_135m', 'forward 4x256 (logits)', `${fmt(b4.tokS)} tok/s  (${(b4.seconds * 1000).toFixed(0)} ms/run)`]);
  const gen = await generateTokS(config, weights, true, 1, 5);
  rows.push(['smollm2_135m', `generate greedy, cached, ${NEW_TOKENS} new, maxLen ${GEN_MAX_LEN}`, `${fmt(gen.tokS)} tok/s  (${(1000 / gen.tokS).toFixed(1)} ms/token)`]);
  result.smollm2_135m = { forward_tok_s_b1: +b1.tokS.toFixed(1), forward_tok_s_b4: +b4.tokS.toFixed(1), generate_tok_s: +gen.tokS.toFixed(1) };
}

/**
 * A real model's shapes (its config.json, core/models/configs), random weights, cut to its first `layers` where the
 * whole model would not fit in memory or time on this machine.
 */
interface RealRow {
  model: string;
  config: RealConfigName;
  layers?: number;
  forward: [number, number];
  train: [number, number];
  method: MemoryMethod;
}
const REAL_ROWS: RealRow[] = [
  { model: 'qwen3-0.6b', config: 'qwen3-0.6b', forward: [1, 256], train: [1, 256], method: 'lora-all-linear' },
  { model: 'gemma-3-270m', config: 'gemma-3-270m', forward: [1, 256], train: [1, 256], method: 'lora-all-linear' },
  { model: 'phi-4-mini', config: 'phi-4-mini-instruct', layers: 4, forward: [1, 256], train: [1, 256], method: 'lora-all-linear' },
  { model: 'qwen3-30b-a3b', config: 'qwen3-30b-a3b', layers: 1, forward: [1, 256], train: [1, 256], method: 'lora-all-linear' },
];
const MB = 2 ** 20;

interface RealResult {
  name: string; parameters: number;
  forward: { B: number; T: number; tok_s: number; compile_s: number };
  train: { B: number; T: number; method: MemoryMethod; steps: number; tok_s: number; step_s: number };
  planned_mb: number; measured_mb: number; error: number; mmap_threshold: number | false;
}
const realResults: RealResult[] = [];

/** The median of the steps after the first (which compiles the step's sessions); the mean of the middle two for an even count. */
function steadyStepSeconds(r: MemoryResult): number {
  const s = r.steps.slice(1).map((x) => x.step_s).sort((a, b) => a - b);
  return (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2;
}

async function realRow(row: RealRow, tmp: string): Promise<RealResult> {
  const raw = realConfig(row.config, row.layers === undefined ? {} : { layers: row.layers });
  const total = realConfig(row.config).num_hidden_layers;
  const name = `${row.model} (${row.layers === undefined ? `all ${total}` : `${row.layers} of ${total}`} layers)`;
  const dir = await randomModelFolder(join(tmp, row.config), raw);
  // Training first, in a child process (its peak RSS is its own), while this process holds no weights of the model.
  const [B, T] = row.train;
  const c: MemoryCase = { name, model: dir, method: row.method, checkpointing: false, B, T, steps: TRAIN_STEPS };
  const r = await runChild<MemoryResult>(join(import.meta.dir, 'lib', 'memory-run.ts'), [JSON.stringify(c)], RESULT_TAG, { quiet: true, label: name });
  const planned = r.trainerPlan.totalBytes;
  const stepS = steadyStepSeconds(r);
  if (verbose) {
    console.error(`${name}: planned ${(planned / MB).toFixed(0)} MB (mmap threshold ${r.trainerPlan.mmapThreshold}), measured ${(r.measuredBytes / MB).toFixed(0)} MB, peak before train() ${(r.beforeTrainBytes / MB).toFixed(0)} MB`);
    for (const i of r.trainerPlan.items) console.error(`    ${i.component.padEnd(48)} ${(i.bytes / MB).toFixed(1).padStart(8)} MB  ${i.note ?? ''}`);
    console.error(`    steps (RSS after / peak so far MB, seconds): ${r.steps.map((s) => `${s.rss_mb.toFixed(0)}/${s.peak_rss_mb.toFixed(0)} ${s.step_s.toFixed(1)}s`).join(', ')}`);
  }
  const { config, weights } = await loadModel(dir);
  const [fb, ft] = row.forward;
  const fwd = await forwardTokS(config, weights, fb, ft, 1, 3, false);
  weights.clear();
  return {
    name, parameters: parameterCount(config),
    forward: { B: fb, T: ft, tok_s: +fwd.tokS.toFixed(1), compile_s: +fwd.compileS.toFixed(1) },
    train: { B, T, method: row.method, steps: TRAIN_STEPS, tok_s: +((B * T) / stepS).toFixed(1), step_s: +stepS.toFixed(2) },
    planned_mb: +(planned / MB).toFixed(1), measured_mb: +(r.measuredBytes / MB).toFixed(1),
    error: +(planned / r.measuredBytes - 1).toFixed(4), mmap_threshold: r.trainerPlan.mmapThreshold,
  };
}

const realChosen = REAL_ROWS.filter((r) => wanted(r.model));
if (realChosen.length && !haveStories) console.warn(`real-config rows skipped: they borrow the stories260k tokenizer from ${STORIES}, which is absent`);
else if (realChosen.length) {
  const tmp = mkdtempSync(join(tmpdir(), 'tuneforge-bench-models-'));
  try {
    for (const row of realChosen) {
      const t0 = performance.now();
      const r = await realRow(row, tmp);
      realResults.push(r);
      console.error(`${r.name}: forward ${fmt(r.forward.tok_s)} tok/s, train ${fmt(r.train.tok_s)} tok/s, planned ${r.planned_mb.toFixed(0)} MB, measured ${r.measured_mb.toFixed(0)} MB (${(100 * r.error).toFixed(1)}%), ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      rmSync(join(tmp, row.config), { recursive: true, force: true });
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

console.log('bench:models');
if (rows.length) {
  const w0 = Math.max(...rows.map((r) => r[0].length)), w1 = Math.max(...rows.map((r) => r[1].length));
  for (const [m, what, v] of rows) console.log(`  ${m.padEnd(w0)}  ${what.padEnd(w1)}  ${v}`);
}
if (realResults.length) {
  console.log(`\nreal configs, random weights; training = LoRA r 8 (${[...new Set(realResults.map((r) => r.train.method))].join(', ')}), AdamW, ${TRAIN_STEPS} steps in a child process; planned = the trainer's plan, measured = its peak RSS (VmHWM); MB = 2^20 bytes`);
  const header = ['model', 'params', 'forward tok/s', 'train tok/s', 'planned MB', 'measured MB', 'error'];
  const table = realResults.map((r) => [
    r.name, `${(r.parameters / 1e6).toFixed(0)}M`, `${fmt(r.forward.tok_s)} (${r.forward.B}x${r.forward.T})`, `${fmt(r.train.tok_s)} (${r.train.B}x${r.train.T})`,
    r.planned_mb.toFixed(0), r.measured_mb.toFixed(0), `${(100 * r.error).toFixed(1)}%`,
  ]);
  const w = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]) => `  ${cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')}`;
  console.log(line(header));
  for (const t of table) console.log(line(t));
}
const maxAbs = realResults.length ? Math.max(...realResults.map((r) => Math.abs(r.error))) : null;
if (maxAbs !== null) console.log(`  max |planned / measured - 1| ${(100 * maxAbs).toFixed(1)}% (bar 10%)`);
console.log(`  (total ${((performance.now() - started) / 1000).toFixed(0)} s)`);
console.log(JSON.stringify({ ...result, real_configs: realResults, max_abs_error: maxAbs === null ? null : +maxAbs.toFixed(4) }));
