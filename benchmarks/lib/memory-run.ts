/**
 * One case of bench:memory, run in its own process so its peak resident memory is its own:
 *
 *   bun run benchmarks/lib/memory-run.ts '<case as JSON>'
 *
 * Writes a packed text dataset whose every example is exactly `T` tokens (so each micro-batch is the planned worst
 * case B x T), builds the config, asks the planner for its prediction (`planMemory`), trains `steps` steps with
 * `train()` (no eval, no export) and prints one line `@@memory-result {...}` with the prediction, its breakdown and
 * the process's peak resident memory (VmHWM) after training; also the RSS and peak after each step (metrics.jsonl).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peakRssBytes, planMemory, rssBytes, type MemoryPlan } from '../../core/memory/index.ts';
import { parseTrainConfig } from '../../core/train/config.ts';
import { train } from '../../core/train/trainer.ts';
import type { Plugin } from '../../core/index.ts';
import { adalora, adapters as bottleneckAdapters, forwardGrad, fullFinetune, int8, lisa, lora, nf4, prefix, prompt, pTuning, zo } from '../../plugins/index.ts';
import { reportToParent } from './child.ts';

/**
 * The techniques of the matrix:
 * - `full`: fullFinetune();
 * - `lora`: LoRA r 8, alpha 16 on q_proj and v_proj;
 * - `lora-all-linear`: the same LoRA on every linear layer but the head (the only choice for fused projections such
 *   as Phi-3's qkv_proj; on a mixture of experts it adapts the router and every expert too);
 * - `qlora`: the same LoRA on an NF4 base (every linear weight but the head in 4 bits, double quantisation);
 * - `int8+lora`: the same LoRA on an int8 base (every linear weight but the head in 8 bits, one scale per row);
 * - `lisa`: LISA, 2 decoder layers active at a time (with the embeddings, head and final norm), switching every
 *   `LISA_ROW_INTERVAL` = 2 steps, run for `LISA_ROW_STEPS` = 4 steps: a window, a switch (fresh optimizer state
 *   and freshly compiled sessions on top of the freed ones), and a second window whose second step has all of its
 *   sessions and state, the steady state the plan predicts. With a switch after every step the step's later
 *   sessions are not built yet at its peak and the new layers' state only exists from the update on, so the peak sits
 *   below the plan (SmolLM2-135M 4x256 checkpointed: 13% below);
 * - `zo`: full-parameter zeroth-order SGD (MeZO, the zo plugin's defaults: two-sided, one direction, eps 1e-3);
 *   no backward pass, no gradients and no optimizer state;
 * - `forward-grad`: Forward-Grad (one JVP per step) estimating the gradient of the same LoRA adapters as `lora`,
 *   handed to AdamW.
 * - `adalora`: AdaLoRA with PEFT's defaults (init_r 12, target_r 8, alpha 8) on q_proj and v_proj, masking from the
 *   first step (tinit 0, tfinal 0, deltaT 1), so the rank allocator and its EMAs exist during the run;
 * - `adapters-series`, `adapters-parallel`: bottleneck adapters with LLM-Adapters' defaults (bottleneck 256, tanh;
 *   series on gate_proj, up_proj, down_proj, parallel beside q_proj, v_proj, k_proj; the bottleneck is clamped to
 *   the width an adapter reads, 64 or 172 on stories260k);
 * - `prefix`: prefix tuning, 20 virtual tokens (the table itself, no projection);
 * - `prompt`: prompt tuning, 20 virtual tokens, N(0, 1) start;
 * - `p-tuning-mlp`, `p-tuning-lstm`: P-tuning, 20 virtual tokens, PEFT's MLP encoder or its 2-layer bidirectional
 *   LSTM, hidden width the model's.
 * zo and forward-grad bring their own gradient estimator, which replaces backpropagation: checkpointing does not
 * apply to them.
 */
export const MEMORY_METHODS = [
  'full', 'lora', 'lora-all-linear', 'qlora', 'int8+lora', 'lisa', 'zo', 'forward-grad',
  'adalora', 'adapters-series', 'adapters-parallel', 'prefix', 'prompt', 'p-tuning-mlp', 'p-tuning-lstm',
] as const;
export type MemoryMethod = (typeof MEMORY_METHODS)[number];

/** LISA's switch interval and run length in the matrix (see `lisa` above). */
export const LISA_ROW_INTERVAL = 2;
export const LISA_ROW_STEPS = 4;

/** The PEFT techniques added after the first six (bench:memory runs them at one shape per model, checkpointing off and on). */
export const NEWER_METHODS = ['adalora', 'adapters-series', 'adapters-parallel', 'prefix', 'prompt', 'p-tuning-mlp', 'p-tuning-lstm'] as const satisfies readonly MemoryMethod[];

/** Whether activation checkpointing changes anything for a method (not where an estimator replaces backprop). */
export const supportsCheckpointing = (method: MemoryMethod): boolean => method !== 'zo' && method !== 'forward-grad';

/** Fresh plugin objects for one run of a method (the planner's and the trainer's run share them). */
export function methodPlugins(method: MemoryMethod): Plugin[] {
  const loraAdapters = () => lora({ r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] });
  switch (method) {
    case 'full': return [fullFinetune()];
    case 'lora': return [loraAdapters()];
    case 'lora-all-linear': return [lora({ r: 8, alpha: 16, targets: 'all-linear' })];
    case 'qlora': return [nf4(), loraAdapters()];
    case 'int8+lora': return [int8(), loraAdapters()];
    case 'lisa': return [lisa({ activeLayers: 2, interval: LISA_ROW_INTERVAL })];
    case 'zo': return [fullFinetune(), zo()];
    case 'forward-grad': return [loraAdapters(), forwardGrad()];
    case 'adalora': return [adalora({ initR: 12, targetR: 8, alpha: 8, targets: ['q_proj', 'v_proj'], tinit: 0, tfinal: 0, deltaT: 1 })];
    case 'adapters-series': return [bottleneckAdapters({ kind: 'series' })];
    case 'adapters-parallel': return [bottleneckAdapters({ kind: 'parallel' })];
    case 'prefix': return [prefix({ virtualTokens: 20 })];
    case 'prompt': return [prompt({ virtualTokens: 20 })];
    case 'p-tuning-mlp': return [pTuning({ virtualTokens: 20, encoder: 'mlp' })];
    case 'p-tuning-lstm': return [pTuning({ virtualTokens: 20, encoder: 'lstm' })];
  }
}

export interface MemoryCase {
  name: string;
  /** A model folder (config.json, model.safetensors, tokenizer files). */
  model: string;
  method: MemoryMethod;
  checkpointing: boolean;
  B: number;
  T: number;
  steps: number;
  /** precision.weights of the run (default float32): the frozen base in half precision. */
  precision?: 'float16' | 'bfloat16';
}

export interface MemoryResult {
  name: string;
  predictedBytes: number;
  measuredBytes: number;
  /** Peak (VmHWM) before train() was called: imports, planner and data file. */
  beforeTrainBytes: number;
  items: { component: string; bytes: number; note?: string }[];
  /** The plan the trainer itself made (its plan.json: createPlanner over the run's tokenised data) and followed. */
  trainerPlan: { totalBytes: number; mmapThreshold: number | false; items: { component: string; bytes: number; note?: string }[] };
  /** Per step: current RSS and peak so far, in MiB (from the run's metrics). */
  steps: { rss_mb: number; peak_rss_mb: number; step_s: number }[];
  seconds: number;
}

export const RESULT_TAG = '@@memory-result ';

const SUBJECTS = ['The little cat', 'A big dog', 'Lily', 'Tom', 'The old bird', 'Mom', 'The happy girl', 'A small fish', 'Ben', 'The red ball'];
const ACTIONS = ['ran to the park', 'sat under a tree', 'ate a sweet cake', 'saw the bright sun', 'played with a friend', 'was very happy', 'went to sleep', 'found a shiny box', 'jumped over the log', 'sang a song'];

/** Deterministic short stories, one per paragraph, enough to pack into `sequences` sequences of `T` tokens. */
function writeStories(path: string, sequences: number, T: number): void {
  // The stories260k tokenizer gives roughly one token per 3 characters of this text; write twice what is needed.
  const chars = 2 * 3 * sequences * T + 1000;
  const docs: string[] = [];
  let total = 0;
  for (let i = 0; total < chars; i++) {
    const sentences: string[] = [];
    for (let k = 0; k < 4 + (i % 5); k++) sentences.push(`${SUBJECTS[(i * 7 + k * 3) % SUBJECTS.length]} ${ACTIONS[(i * 3 + k * 5) % ACTIONS.length]}.`);
    const doc = sentences.join(' ');
    docs.push(doc);
    total += doc.length + 2;
  }
  writeFileSync(path, `${docs.join('\n\n')}\n`);
}

export async function runCase(c: MemoryCase): Promise<MemoryResult> {
  const dir = mkdtempSync(join(tmpdir(), 'tuneforge-memory-'));
  try {
    const dataFile = join(dir, 'train.txt');
    writeStories(dataFile, c.B * c.steps, c.T);
    const config = parseTrainConfig({
      model: c.model,
      output: join(dir, 'run'),
      seed: 0,
      // Packed text: every example is exactly T tokens and every position carries loss.
      data: { train: dataFile, format: 'text', maxLength: c.T, packText: true },
      train: { steps: c.steps, batchSize: c.B, lr: 1e-4, optimizer: 'adamw', padMultiple: 16 },
      eval: { every: 0 },
      checkpoint: { every: 0, keep: 1 },
      export: { merged: false, adapters: false },
      memory: { checkpointing: c.checkpointing },
      ...(c.precision ? { precision: { weights: c.precision } } : {}),
    });
    const plugins = methodPlugins(c.method);
    const plan = await planMemory(config, plugins);
    const beforeTrainBytes = peakRssBytes();
    const t0 = performance.now();
    const log = (line: string) => process.stderr.write(`[${c.name}] ${line}\n`);
    const r = await train({ config, plugins, resume: false, log, progress: { isTTY: false, write: () => true } });
    const measuredBytes = peakRssBytes();
    const seconds = (performance.now() - t0) / 1000;
    if (r.step !== c.steps) throw new Error(`trained ${r.step} steps, expected ${c.steps}`);
    const steps = readFileSync(join(config.output, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, number>).filter((m) => m.loss !== undefined)
      .map((m) => ({ rss_mb: m.rss_mb!, peak_rss_mb: m.peak_rss_mb!, step_s: m.step_s! }));
    const trainerPlan = JSON.parse(readFileSync(join(config.output, 'plan.json'), 'utf8')) as MemoryPlan;
    const itemsOf = (p: MemoryPlan) => p.items.map((i) => ({ component: i.component, bytes: i.bytes, note: i.note }));
    return {
      name: c.name, predictedBytes: plan.totalBytes, measuredBytes, beforeTrainBytes, items: itemsOf(plan),
      trainerPlan: { totalBytes: trainerPlan.totalBytes, mmapThreshold: trainerPlan.mmapThreshold, items: itemsOf(trainerPlan) }, steps, seconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const arg = process.argv[2];
  if (!arg) throw new Error("usage: bun run benchmarks/lib/memory-run.ts '<case JSON>'");
  const result = await runCase(JSON.parse(arg) as MemoryCase);
  reportToParent(RESULT_TAG, { ...result, rssAtEnd: rssBytes() });
}
