/**
 * bench:zo — first-order vs zeroth-order vs forward-gradient fine-tuning at an equal budget of forward passes, in the
 * spirit of ZO-Bench's tables (Zhang et al., 2024, "Revisiting Zeroth-Order Optimization for Memory-Efficient LLM
 * Fine-Tuning"), on stories260k + SST-2.
 *
 * Recipe (examples/sst2.config.ts and examples/sst2-lora.config.ts): prompt "Review: <sentence>\nSentiment:", answers
 * " negative" / " positive", loss on the answer tokens only, batches of 16 drawn at random with replacement, constant
 * learning rate, seed 0; accuracy on the 872 dev sentences, predicting the answer with the higher total
 * log-likelihood. "full" trains every weight (fullFinetune()), "lora" trains rank-8 adapters (alpha 16) on every linear
 * layer, as in the LoRA example config; "prefix" and "prompt" keep the model frozen and train, as ZO-Bench does, 10
 * virtual tokens: prefix tuning's key/value slots in every layer (prefix({ virtualTokens: 10 }), 3,200 parameters,
 * the table itself started N(0, 1) as PEFT's) or prompt tuning's soft prompt (prompt({ virtualTokens: 10, init:
 * 'vocab' }), 640 parameters, started from the embeddings of random vocabulary tokens, ZO-Bench's
 * --prompt_init_by_real_tokens), on the full recipe (examples/sst2.config.ts) with that plugin instead of fullFinetune().
 *
 * Methods (32 rows = 8 methods x {full, lora, prefix, prompt}):
 *   FO-SGD, FO-AdamW   backpropagation, the trainer's SGD (no momentum) / AdamW (no weight decay), no clipping
 *   ZO-SGD (MeZO), ZO-SGD-Sign, ZO-SGD-MMT (momentum 0.9), ZO-SGD-Cons, ZO-Adam
 *                      plugins/zo: two-sided estimate, one direction per step, eps 1e-3 (full) / 1e-2 (LoRA) /
 *                      1e-1 (prefix) as MeZO, 1e-2 (prompt) as ZO-Bench's SST-2 prompt-tuning runs
 *   Forward-Grad       plugins/forward-grad: one JVP along v ~ N(0, I) per step, SGD, global-norm clipping at 1
 *
 * THE BUDGET. Every run gets the same number of forward-pass equivalents, `--budget` (default 300); a run's steps are
 * floor(budget / cost per step) (300: 100 backprop steps, 150 ZO steps, 60 ZO-Cons steps, 100 Forward-Grad steps),
 * with the cost per step:
 *   backprop step (FO-SGD, FO-AdamW)        3   (one forward + a backward counted as ~2 forwards: the usual convention)
 *   ZO-SGD, -Sign, -MMT, ZO-Adam            2   (f(θ+εz) and f(θ−εz): the zo plugin's forwardsPerStep())
 *   ZO-SGD-Cons                             5   (f(θ), f(θ±εz), then f(θ−lr·g·z) and f(θ+lr·g·z); forwardsPerStep())
 *   Forward-Grad                            3   (FG_COST: the JVP graph's time over the forward graph's, rounded)
 * Forward-Grad's 3 is measured, not assumed (`--calibrate`: forward, JVP and value-and-gradient graphs of stories260k
 * compiled for the same 6 random SST-2 batches of 16, T = 80..128, 10 interleaved runs each, medians). Four runs on
 * this 2-core machine with other jobs running (load 3-6) gave JVP / forward = 2.66, 3.49, 3.33, 2.94 with every
 * weight trainable and 2.37, 2.60, 2.47, 2.63 with LoRA's (means 2.5-3.0, so 3 for both, as backprop counts 3 for
 * both); backprop / forward was 2.97, 3.37, 3.37, 3.00 (full) and 2.78, 2.74, 2.65, 2.85 (LoRA), so the JVP costs
 * about what a backprop step does here, not the ~2 forwards often assumed. Under heavy load (load 10-13) both ratios
 * inflate (JVP 3.4-5.0), which is why the cost is a constant rather than this run's measurement: every run re-measures
 * (3 batches x 6 runs) and prints the ratios beside it. The evaluation's forward passes (the dev set) are not
 * counted: they are the same for every row. Prefix and prompt rows count 3 as well: in the three runs that timed all
 * four sets (3 batches x 6 runs each, load 1-5, with bench:peft running beside two of them) JVP / forward was 1.63,
 * 2.13, 2.03 for prefix and 1.61, 2.44, 2.12 for prompt, against 1.99, 2.19, 2.31 (full) and 1.79, 2.66, 2.50 (LoRA)
 * in the same runs, and backprop / forward 1.53, 1.80, 1.94 (prefix) and 1.60, 2.31, 2.16 (prompt): the JVP again
 * costs what a backprop step does, for every set, so one constant keeps the rows comparable. (Those runs' ratios
 * are lower than the four above for every set, so they round to 2; FG_COST stays the measured 3.) A run calibrates
 * full and LoRA, and prefix or prompt when their Forward-Grad rows run.
 *
 * Memory: each row (and the zero-shot evaluation, and the calibration) runs in its own child process, so peaks are
 * independent. "measured" is the process's peak resident memory (VmHWM, `peakRssBytes()`) after `train()` returned
 * (it covers training, the final dev evaluation and the final checkpoint); "predicted" is `planMemory(config, plugins)`
 * with the same config and plugin objects, computed in the child before training; error = (predicted − measured) /
 * measured. The recipe leaves data.maxLength at its default, so the planner plans sequences of 512 (the model's limit);
 * SST-2's longest example is 187 tokens, so the table also gives the plan at T = 192 (`planMemory(..., { seqLen })`)
 * and the resident memory after the last training step (VmRSS, not the peak).
 *
 * Learning rates: the defaults below (LRS) were chosen by this script's `--sweep` mode: for each row, 3 values around
 * the field's typical ones (ZO-Bench / MeZO: ZO full 1e-6..1e-7 and LoRA 1e-4..5e-5 for billion-parameter models; a
 * 260K-parameter model takes larger ones), trained on half the budget and scored on a validation set of 500 training
 * records of at least 8 words (MeZO-style validation drawn from the training data, so the dev set stays untouched);
 * the best validation accuracy wins, where accuracies within one standard error of the best count as ties (at this
 * budget most runs predict the majority class, 56.2% of that set), and ties go to the lower training loss of the last
 * 20 steps. Where the best value sat at the edge of its grid, the sweep was extended with --grid. (The sweep counted
 * Forward-Grad as 4 forward passes per step, 37 steps, from a first measurement taken under heavy load.)
 *
 * The prefix and prompt rows were swept the same way (FG_COST 3, so Forward-Grad had 50 steps), from grids around
 * ZO-Bench / MeZO's prompt-learning values (ZO prefix lr 1e-2..1e-3 with eps 1e-1, ZO prompt lr 1e-3 with eps 1e-2;
 * a few thousand parameters take larger ones still), on this 2-core machine with bench:peft running beside it; 12 of
 * the 16 bests sat at the top of their grid, which one more value (the 4th of SWEEP) settled:
 *   bun run bench:zo --sweep --jobs 1 --only fo-sgd/prefix,fo-sgd/prompt,...,forward-grad/prompt   # the 16 rows: 48 runs, 32 min
 *   bun run bench:zo --sweep --jobs 1 --only <those 12> --grid fo-sgd/prefix=10,fo-sgd/prompt=10,fo-adamw/prefix=1,
 *     zo-sgd/prompt=1,zo-sign/prefix=0.3,zo-sign/prompt=0.3,zo-mmt/prefix=0.1,zo-mmt/prompt=0.1,zo-cons/prefix=1,
 *     zo-cons/prompt=1,zo-adam/prefix=1,zo-adam/prompt=1                                        # 12 runs, 10 min
 * Validation accuracy per lr (loss of the last 20 steps), * = chosen:
 *   FO-SGD       prefix  1e-2 50.8% (7.21), 1e-1 39.6% (3.08), 1* 49.8% (0.31), 10 43.8% (2.16)
 *                prompt  1e-2 56.2% (4.81), 1e-1 56.2% (3.62), 1* 55.6% (2.35), 10 50.0% (1.80)
 *   FO-AdamW     prefix  1e-3 50.2% (7.89), 1e-2 45.4% (2.94), 1e-1* 53.8% (0.21), 1 48.4% (0.66)
 *                prompt  1e-3 56.2% (4.75), 1e-2* 56.2% (3.26), 1e-1 52.4% (1.19)
 *   ZO-SGD       prefix  1e-3 49.4% (8.89), 1e-2* 51.6% (6.08), 1e-1 46.6% (4.70)
 *                prompt  1e-3 56.2% (5.26), 1e-2 56.2% (4.32), 1e-1* 56.2% (4.05), 1 55.6% (4.71)
 *   ZO-SGD-Sign  prefix  3e-4 49.6% (9.32), 3e-3 49.8% (8.96), 3e-2* 51.6% (6.09), 3e-1 43.6% (6.09)
 *                prompt  3e-4 56.2% (5.31), 3e-3 56.2% (5.17), 3e-2* 56.2% (3.99), 3e-1 47.6% (4.16)
 *   ZO-SGD-MMT   prefix  1e-4 49.2% (8.93), 1e-3 49.2% (6.20), 1e-2* 53.2% (5.07), 1e-1 50.8% (9.41)
 *                prompt  1e-4 56.2% (5.26), 1e-3 56.2% (4.58), 1e-2* 56.2% (4.56), 1e-1 49.6% (4.18)
 *   ZO-SGD-Cons  prefix  1e-3 48.2% (9.22), 1e-2 50.6% (7.86), 1e-1* 48.4% (5.63), 1 47.4% (8.30)
 *                prompt  1e-3 56.2% (5.32), 1e-2 56.2% (4.99), 1e-1* 56.2% (4.41), 1 52.2% (5.17)
 *   ZO-Adam      prefix  1e-3 49.2% (9.19), 1e-2 50.6% (7.67), 1e-1* 53.2% (4.77), 1 50.0% (7.94)
 *                prompt  1e-3 56.2% (5.26), 1e-2 56.2% (4.54), 1e-1* 56.4% (4.13), 1 52.0% (3.71)
 *   Forward-Grad prefix  0.3 49.6% (8.79), 1* 52.8% (7.66), 3 46.4% (6.13)
 *                prompt  0.3 56.2% (4.80), 1* 56.2% (4.25), 3 56.2% (4.37)
 * At half the budget every prompt run but the largest lrs predicts the majority class (56.2%), so the loss decides;
 * every prefix run scores below it: prefix tuning starts from N(0, 1) key/value slots (PEFT's nn.Embedding start;
 * ZO-Bench starts its prefixes from real activations, which plugins/prefix does not offer), which raise the answer
 * loss from ~5.0 (the bare model: ZO-SGD on LoRA at 1e-4 hardly moves it) to ~9.3, and the budget goes into undoing
 * that; prompt tuning's vocabulary start leaves it at ~5.2.
 *
 *   bun run bench:zo                                   # the 32 rows + zero-shot (budget 300: the 16 full/LoRA rows took 23 min on 2 cores with other jobs running)
 *   bun run bench:zo --budget 60 --eval-limit 100      # a quick check
 *   bun run bench:zo --sweep                           # the learning-rate sweep, every row's SWEEP grid (112 runs at budget 150: the 52 full/LoRA
 *                                                      # ones took about 40 min with --jobs 2, the 60 prefix/prompt ones 42 min with --jobs 1)
 *   bun run bench:zo --only zo-sgd/lora,fo-adamw/full --lr zo-sgd/lora=1e-3
 *
 * Options (each also as an environment variable ZO_<NAME>, e.g. ZO_BUDGET=60):
 *   --budget N          forward-pass equivalents per run (default 300)
 *   --fg-cost C         Forward-Grad's cost per step in forward passes (default FG_COST = 3)
 *   --calibrate [N]     only measure JVP / forward and backprop / forward (N batches, default 6, x 10 runs; every
 *                       trainable set) and exit
 *   --only a/b,...      rows to run (method/params, params full, lora, prefix or prompt; default all 32)
 *   --lr a/b=X,...      learning-rate overrides
 *   --seed N            seed (default 0)
 *   --eval-limit N      score only the first N dev sentences (quick checks)
 *   --zero-shot 0|1     measure zero-shot accuracy (default 1)
 *   --sweep             learning-rate sweep instead of the benchmark (budget default 150, validation set as above)
 *   --jobs N            sweep only: runs at once (default 1; the sweep reports accuracy, not time or memory)
 *   --grid a/b=x:y,...  sweep only: learning rates to try for these rows instead of SWEEP's
 *
 * Prints a table and ends with one JSON line:
 *   {"budget_forward_passes": N, "rows": [{"method", "params", "lr", "steps", "acc", "wall_s", "measured_mb",
 *    "predicted_mb", "error", ...}], "zero_shot_acc": ..., ...}
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { jvp, valueAndGrad, compile, type HostTensor, type Plugin } from '../core/index.ts';
import { BatchStream } from '../core/data/stream.ts';
import { seededRandom } from '../core/generate/sampling.ts';
import { peakRssBytes, planMemory } from '../core/memory/index.ts';
import { microBatches } from '../core/train/batches.ts';
import type { TrainConfig } from '../core/train/config.ts';
import { loadConfigFile } from '../core/train/load-config.ts';
import { evaluateCommand } from '../core/train/run.ts';
import { loadRunData, setupModel, trainableSet } from '../core/train/setup.ts';
import { train } from '../core/train/trainer.ts';
import { forwardGrad } from '../plugins/forward-grad/index.ts';
import { BUILTIN_PLUGINS } from '../plugins/index.ts';
import { prefix } from '../plugins/prefix/index.ts';
import { prompt } from '../plugins/prompt/index.ts';
import { zo, type ZoApi } from '../plugins/zo/index.ts';
import { benchOptions } from './lib/options.ts';
import { reportToParent, runChild } from './lib/child.ts';

const ROOT = resolve(import.meta.dir, '..');
/** The recipe's config file per trainable set; prefix and prompt take the full recipe's with their plugin (TECHNIQUE). */
const CONFIGS = {
  full: join(ROOT, 'examples/sst2.config.ts'), lora: join(ROOT, 'examples/sst2-lora.config.ts'),
  prefix: join(ROOT, 'examples/sst2.config.ts'), prompt: join(ROOT, 'examples/sst2.config.ts'),
} as const;
type Params = keyof typeof CONFIGS;
const PARAMS: Params[] = ['full', 'lora', 'prefix', 'prompt'];
/**
 * The prompt-learning sets, as ZO-Bench runs them: prefix tuning with 10 virtual tokens (key/value slots in every
 * layer, the table itself, no reparameterisation), prompt tuning with 10 virtual tokens started from the embeddings of
 * random vocabulary tokens (ZO-Bench's --num_virtual_tokens=10 --prompt_init_by_real_tokens). They replace the recipe's
 * fullFinetune(): the model stays frozen.
 */
const TECHNIQUE: Partial<Record<Params, () => Plugin>> = {
  prefix: () => prefix({ virtualTokens: 10 }),
  prompt: () => prompt({ virtualTokens: 10, init: 'vocab' }),
};

const METHODS = ['fo-sgd', 'fo-adamw', 'zo-sgd', 'zo-sign', 'zo-mmt', 'zo-cons', 'zo-adam', 'forward-grad'] as const;
type Method = (typeof METHODS)[number];
const LABEL: Record<Method, string> = {
  'fo-sgd': 'FO-SGD', 'fo-adamw': 'FO-AdamW', 'zo-sgd': 'ZO-SGD', 'zo-sign': 'ZO-SGD-Sign', 'zo-mmt': 'ZO-SGD-MMT',
  'zo-cons': 'ZO-SGD-Cons', 'zo-adam': 'ZO-Adam', 'forward-grad': 'Forward-Grad',
};
const ZO_VARIANT = { 'zo-sgd': 'sgd', 'zo-sign': 'sign', 'zo-mmt': 'mmt', 'zo-cons': 'cons', 'zo-adam': 'adam' } as const;
const isZo = (m: Method): m is keyof typeof ZO_VARIANT => m in ZO_VARIANT;
/**
 * MeZO's perturbation sizes: 1e-3 for full parameters, 1e-2 for LoRA, 1e-1 for prefix; prompt tuning 1e-2, as in
 * ZO-Bench's SST-2 prompt-tuning runs (its grid: 1e-2, 1e-3, 1e-4).
 */
const ZO_EPS: Record<Params, number> = { full: 1e-3, lora: 1e-2, prefix: 1e-1, prompt: 1e-2 };
/**
 * Forward-Grad's cost per step in forward passes: the JVP graph's time over the forward graph's on stories260k at B=16
 * (`--calibrate`, 6 random SST-2 batches x 10 interleaved runs, medians), rounded. See the report in the header.
 */
const FG_COST = 3;
/** The sets a calibration times unless told otherwise (those FG_COST was measured on). */
const CALIBRATED: Params[] = ['full', 'lora'];
/** Forward-Grad clips the global norm of its (high-variance) estimate. */
const FG_MAX_GRAD_NORM = 1;

/** Learning rates, chosen by `--sweep` (see the header); the sweep's grid is SWEEP. */
const LRS: Record<`${Method}/${Params}`, number> = {
  'fo-sgd/full': 3e-3, 'fo-sgd/lora': 1e-2,
  'fo-adamw/full': 3e-4, 'fo-adamw/lora': 3e-3,
  'zo-sgd/full': 1e-4, 'zo-sgd/lora': 1e-4,
  'zo-sign/full': 3e-4, 'zo-sign/lora': 3e-3,
  'zo-mmt/full': 3e-6, 'zo-mmt/lora': 3e-5,
  'zo-cons/full': 3e-5, 'zo-cons/lora': 3e-4,
  'zo-adam/full': 3e-4, 'zo-adam/lora': 1e-3,
  'forward-grad/full': 1, 'forward-grad/lora': 1,
  'fo-sgd/prefix': 1, 'fo-sgd/prompt': 1,
  'fo-adamw/prefix': 1e-1, 'fo-adamw/prompt': 1e-2,
  'zo-sgd/prefix': 1e-2, 'zo-sgd/prompt': 1e-1,
  'zo-sign/prefix': 3e-2, 'zo-sign/prompt': 3e-2,
  'zo-mmt/prefix': 1e-2, 'zo-mmt/prompt': 1e-2,
  'zo-cons/prefix': 1e-1, 'zo-cons/prompt': 1e-1,
  'zo-adam/prefix': 1e-1, 'zo-adam/prompt': 1e-1,
  'forward-grad/prefix': 1, 'forward-grad/prompt': 1,
};
/** The grids tried (3 values each, a 4th where the first three's best sat at an edge). */
const SWEEP: Record<`${Method}/${Params}`, number[]> = {
  'fo-sgd/full': [1e-3, 3e-3, 1e-2, 3e-2], 'fo-sgd/lora': [3e-3, 1e-2, 3e-2, 1e-1],
  'fo-adamw/full': [3e-4, 1e-3, 3e-3, 1e-2], 'fo-adamw/lora': [1e-3, 3e-3, 1e-2, 3e-2],
  'zo-sgd/full': [1e-6, 1e-5, 1e-4, 3e-4], 'zo-sgd/lora': [1e-5, 1e-4, 1e-3],
  'zo-sign/full': [3e-5, 3e-4, 3e-3], 'zo-sign/lora': [3e-4, 3e-3, 3e-2],
  'zo-mmt/full': [3e-7, 3e-6, 3e-5], 'zo-mmt/lora': [3e-6, 3e-5, 3e-4],
  'zo-cons/full': [3e-6, 3e-5, 3e-4], 'zo-cons/lora': [3e-5, 3e-4, 3e-3],
  'zo-adam/full': [3e-5, 3e-4, 3e-3], 'zo-adam/lora': [1e-4, 1e-3, 1e-2],
  'forward-grad/full': [0.1, 0.3, 1, 3], 'forward-grad/lora': [0.1, 0.3, 1, 3],
  'fo-sgd/prefix': [1e-2, 1e-1, 1, 10], 'fo-sgd/prompt': [1e-2, 1e-1, 1, 10],
  'fo-adamw/prefix': [1e-3, 1e-2, 1e-1, 1], 'fo-adamw/prompt': [1e-3, 1e-2, 1e-1],
  'zo-sgd/prefix': [1e-3, 1e-2, 1e-1], 'zo-sgd/prompt': [1e-3, 1e-2, 1e-1, 1],
  'zo-sign/prefix': [3e-4, 3e-3, 3e-2, 3e-1], 'zo-sign/prompt': [3e-4, 3e-3, 3e-2, 3e-1],
  'zo-mmt/prefix': [1e-4, 1e-3, 1e-2, 1e-1], 'zo-mmt/prompt': [1e-4, 1e-3, 1e-2, 1e-1],
  'zo-cons/prefix': [1e-3, 1e-2, 1e-1, 1], 'zo-cons/prompt': [1e-3, 1e-2, 1e-1, 1],
  'zo-adam/prefix': [1e-3, 1e-2, 1e-1, 1], 'zo-adam/prompt': [1e-3, 1e-2, 1e-1, 1],
  'forward-grad/prefix': [0.3, 1, 3], 'forward-grad/prompt': [0.3, 1, 3],
};

/**
 * The longest SST-2 example with this prompt is 187 tokens (train; dev: 165), so no batch is longer than 192 (padded
 * to a multiple of 16). The recipe leaves data.maxLength at its default, which the planner caps at the model's 512
 * positions and plans for; the benchmark also reports the plan at 192.
 */
const DATA_MAX_T = 192;
const DEFAULT_BUDGET = 300;
const SWEEP_BUDGET = 150;
const VALIDATION = { size: 500, minWords: 8, trainPool: 8000 };

// ---------------------------------------------------------------------------------------------------- jobs

interface TrainJob {
  kind: 'train';
  method: Method;
  params: Params;
  lr: number;
  budget: number;
  fgCost: number;
  seed: number;
  evalLimit?: number;
  /** Replace the dev file and the training file (the sweep's validation set and training pool). */
  evalFile?: string;
  trainFile?: string;
}
interface ZeroShotJob {
  kind: 'zero-shot';
  seed: number;
  evalLimit?: number;
}
interface CalibrateJob {
  kind: 'calibrate';
  seed: number;
  /** The trainable sets timed (default full and LoRA). */
  params?: Params[];
  /** Random batches of 16 timed, and timed runs of each graph per batch. */
  batches: number;
  reps: number;
}
type Job = TrainJob | ZeroShotJob | CalibrateJob;

interface TrainResult {
  acc: number;
  steps: number;
  forwardsPerStep: number;
  /** train(): compiling, the steps, the final evaluation and checkpoint. */
  wallSeconds: number;
  /** The steps alone (sum of the per-step times in metrics.jsonl). */
  stepSeconds: number;
  measuredBytes: number;
  predictedBytes: number;
  /** The planner with the sequence length overridden to the data's longest (DATA_MAX_T). */
  predictedDataTBytes: number;
  /** Resident memory (VmRSS, not the peak) after the last training step. */
  rssLastStepBytes: number;
  /** Mean training loss of the first and last 20 steps. */
  firstLoss: number;
  lastLoss: number;
}
interface ZeroShotResult { acc: number; seconds: number; measuredBytes: number }
interface CalibrateResult {
  /** Median milliseconds per run of each graph, by trainable set (those of the job). */
  ms: Partial<Record<Params, { forward: number; jvp: number; backprop: number }>>;
  dims: { B: number; T: number }[];
}

const RESULT_TAG = '@@zo-result ';

// ---------------------------------------------------------------------------------------------------- options

const opts = benchOptions(['budget', 'fg-cost', 'only', 'lr', 'seed', 'eval-limit', 'zero-shot', 'sweep', 'jobs', 'grid', 'calibrate', 'child'], 'ZO');
const option = opts.string, numberOption = opts.number;

function rowKey(s: string): `${Method}/${Params}` {
  const [m, p] = s.trim().split('/');
  if (!METHODS.includes(m as Method) || !PARAMS.includes(p as Params)) throw new Error(`unknown row ${JSON.stringify(s)}: expected method/params with method in ${METHODS.join(', ')} and params in ${PARAMS.join(', ')}`);
  return `${m as Method}/${p as Params}`;
}

// ---------------------------------------------------------------------------------------------------- child

function estimatorPlugins(job: TrainJob): Plugin[] {
  if (isZo(job.method)) return [zo({ variant: ZO_VARIANT[job.method], eps: ZO_EPS[job.params] })];
  if (job.method === 'forward-grad') return [forwardGrad()];
  return [];
}

function stepCost(job: TrainJob, plugins: readonly Plugin[]): number {
  if (isZo(job.method)) return (plugins.find((p) => p.name === 'tuneforge:zo')!.api as ZoApi).forwardsPerStep();
  if (job.method === 'forward-grad') return job.fgCost;
  return 3;
}

async function trainConfig(params: Params, output: string, seed: number): Promise<{ config: TrainConfig; plugins: Plugin[] }> {
  const loaded = await loadConfigFile(CONFIGS[params], BUILTIN_PLUGINS);
  const { config } = loaded;
  const technique = TECHNIQUE[params];
  const plugins = technique ? [technique()] : loaded.plugins;
  if (technique) config.plugins = plugins;
  config.output = output;
  config.seed = seed;
  config.eval.every = 0;
  // The table's recipe predates the default job's validation split, baseline and samples (examples/sst2-lora.config.ts).
  config.data.validationFraction = 0;
  config.eval.baseline = false;
  config.eval.samples = [];
  config.checkpoint = { every: 0, keep: 1 };
  config.export = { merged: false, adapters: false }; // accuracy is measured; nothing needs exporting
  return { config, plugins };
}

async function runTrain(job: TrainJob, dir: string, log: (l: string) => void): Promise<TrainResult> {
  const { config, plugins: base } = await trainConfig(job.params, dir, job.seed);
  const plugins = [...base, ...estimatorPlugins(job)];
  const forwardsPerStep = stepCost(job, plugins);
  const steps = Math.floor(job.budget / forwardsPerStep);
  if (steps < 1) throw new Error(`budget ${job.budget} is below one step of ${job.method} (${forwardsPerStep} forward passes)`);
  const t = config.train;
  t.steps = steps;
  t.lr = job.lr;
  t.schedule = 'constant';
  t.warmupSteps = 0;
  t.weightDecay = 0;
  t.microBatchSize = t.batchSize; // one ZO step per batch
  if (job.method === 'fo-sgd' || job.method === 'forward-grad') {
    t.optimizer = 'sgd';
    t.momentum = 0;
  } else t.optimizer = 'adamw'; // FO-AdamW; the ZO estimators update the parameters themselves
  t.maxGradNorm = job.method === 'forward-grad' ? FG_MAX_GRAD_NORM : null;
  if (job.evalFile) config.task.choice!.evalFile = job.evalFile;
  if (job.trainFile) config.task.choice!.trainFile = job.trainFile;
  if (job.evalLimit !== undefined) config.task.choice!.evalLimit = job.evalLimit;

  const plan = await planMemory(config, plugins);
  const planDataT = await planMemory(config, plugins, { seqLen: DATA_MAX_T });
  log(`${steps} steps x ${forwardsPerStep} forward passes, lr ${job.lr}, predicted peak ${(plan.totalBytes / 2 ** 20).toFixed(0)} MiB`);
  const t0 = performance.now();
  const progress = { isTTY: false, write: (s: string) => void process.stderr.write(s.split('\n').map((l) => (l ? `[${job.method}/${job.params}] ${l}` : l)).join('\n')) };
  const r = await train({ config, plugins, resume: false, log, progress });
  const measuredBytes = peakRssBytes();
  const wallSeconds = (performance.now() - t0) / 1000;
  if (r.step !== steps) throw new Error(`trained ${r.step} steps, expected ${steps}`);
  const acc = r.metrics.eval_accuracy;
  if (acc === undefined || !Number.isFinite(acc)) throw new Error('no eval_accuracy was reported');
  const records = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, number>);
  const stepRecords = records.filter((m) => m.loss !== undefined);
  const losses = stepRecords.map((m) => m.loss!);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
  return {
    acc, steps, forwardsPerStep, wallSeconds, stepSeconds: stepRecords.reduce((s, m) => s + m.step_s!, 0),
    measuredBytes, predictedBytes: plan.totalBytes, predictedDataTBytes: planDataT.totalBytes,
    rssLastStepBytes: stepRecords.at(-1)!.rss_mb! * 2 ** 20, firstLoss: mean(losses.slice(0, 20)), lastLoss: mean(losses.slice(-20)),
  };
}

/**
 * Times the forward graph, its JVP (Forward-Grad) and its value-and-gradient graph (backprop) on the same random
 * SST-2 batches of 16, interleaved so that load from other processes falls on all three alike; medians.
 */
async function runCalibrate(job: CalibrateJob, dir: string, log: (l: string) => void): Promise<CalibrateResult> {
  const ms: CalibrateResult['ms'] = {};
  const dims: { B: number; T: number }[] = [];
  let data: Awaited<ReturnType<typeof loadRunData>> | undefined;
  const sets = job.params ?? CALIBRATED;
  for (const params of sets) {
    const { config, plugins } = await trainConfig(params, dir, job.seed);
    config.task.choice!.evalLimit = 1;
    const m = await setupModel(config, plugins, () => 1, () => {});
    data ??= await loadRunData(config, m.tok, () => {}, m.ctx.model.config.maxPositions); // the same records for both
    const records = data.train;
    const trainable = trainableSet(m);
    const padId = m.tok.padId ?? 0;
    const stream = new BatchStream(records, { batchSize: 16, padId, seed: job.seed, shuffle: true, drawRandom: true });
    const batches = Array.from({ length: job.batches }, () => microBatches(records, stream.next(), 16, padId, config.train.padMultiple)[0]!);
    const graphs = { forward: m.forward, jvp: jvp(m.forward, { wrt: trainable }), backprop: valueAndGrad(m.forward, { of: 'loss', wrt: trainable }) };
    const times: Record<keyof typeof graphs, number[]> = { forward: [], jvp: [], backprop: [] };
    const random = seededRandom(job.seed + 1);
    for (const mb of batches) {
      if (params === sets[0]) dims.push(mb.dims);
      const runs = {} as Record<keyof typeof graphs, () => Promise<unknown>>;
      for (const k of Object.keys(graphs) as (keyof typeof graphs)[]) {
        const exe = await compile(graphs[k], { dims: mb.dims });
        const feeds: Record<string, HostTensor> = {};
        for (const i of exe.inputs) {
          if (i.name.startsWith('tangent:')) {
            const n = m.params.get(i.name.slice('tangent:'.length))!.data.length;
            feeds[i.name] = { dtype: 'float32', shape: i.dims, data: Float32Array.from({ length: n }, () => random() - 0.5) };
          } else feeds[i.name] = (mb.feeds as Record<string, HostTensor>)[i.name] ?? m.params.get(i.name)!;
        }
        runs[k] = () => exe.run(feeds);
        for (let w = 0; w < 2; w++) await runs[k](); // warm-up
      }
      for (let rep = 0; rep < job.reps; rep++) {
        for (const k of Object.keys(graphs) as (keyof typeof graphs)[]) {
          const t0 = performance.now();
          await runs[k]();
          times[k].push(performance.now() - t0);
        }
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const t = (ms[params] = { forward: median(times.forward), jvp: median(times.jvp), backprop: median(times.backprop) });
    log(`${params}: forward ${t.forward.toFixed(1)} ms, JVP ${t.jvp.toFixed(1)} ms, backprop ${t.backprop.toFixed(1)} ms (B=16, T=${batches.map((b) => b.dims.T).join('/')})`);
  }
  return { ms, dims };
}

async function runJob(job: Job): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), `tuneforge-zo-${job.kind === 'train' ? `${job.method}-${job.params}` : job.kind}-`));
  const prefix = job.kind === 'train' ? `[${job.method}/${job.params} lr ${job.lr}] ` : `[${job.kind}] `;
  const log = (line: string) => process.stderr.write(`${prefix}${line}\n`);
  try {
    if (job.kind === 'train') return await runTrain(job, dir, log);
    if (job.kind === 'calibrate') return await runCalibrate(job, dir, log);
    const { config, plugins } = await trainConfig('full', dir, job.seed);
    if (job.evalLimit !== undefined) config.task.choice!.evalLimit = job.evalLimit;
    const t0 = performance.now();
    const acc = (await evaluateCommand(config, plugins, log)).eval_accuracy!;
    return { acc, seconds: (performance.now() - t0) / 1000, measuredBytes: peakRssBytes() } satisfies ZeroShotResult;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a job in a child process: its wall time and peak memory are its own. */
const spawnJob = <R>(job: Job) => runChild<R>(import.meta.path, ['--child', JSON.stringify(job)], RESULT_TAG, { cwd: ROOT, label: JSON.stringify(job) });

const childArg = option('child');
if (childArg !== undefined) reportToParent(RESULT_TAG, await runJob(JSON.parse(childArg) as Job));

// ---------------------------------------------------------------------------------------------------- parent

const sweep = option('sweep') !== undefined && option('sweep') !== '0';
const budget = numberOption('budget') ?? (sweep ? SWEEP_BUDGET : DEFAULT_BUDGET);
if (!Number.isInteger(budget) || budget < 1) throw new Error(`--budget: expected a positive integer, got ${budget}`);
const seed = numberOption('seed') ?? 0;
const evalLimit = numberOption('eval-limit');
const zeroShot = !sweep && (numberOption('zero-shot') ?? 1) !== 0;
const only = option('only');
const rowsToRun: `${Method}/${Params}`[] = only
  ? only.split(',').filter((s) => s.trim()).map(rowKey)
  : METHODS.flatMap((m) => PARAMS.map((p) => `${m}/${p}` as const));
const lrs = { ...LRS };
for (const kv of (option('lr') ?? '').split(',').filter((s) => s.trim())) {
  const [k, v] = kv.split('=');
  const lr = Number(v);
  if (!(lr > 0)) throw new Error(`--lr ${kv}: expected method/params=<positive number>`);
  lrs[rowKey(k!)] = lr;
}

const started = performance.now();
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const mb = (bytes: number) => bytes / 2 ** 20;
const elapsed = () => `${((performance.now() - started) / 60_000).toFixed(1)} min`;

// Forward-Grad's cost per step, in forward passes: FG_COST (or --fg-cost); the JVP / forward ratio is measured again
// on every run (3 batches x 6 runs, about a minute) and printed beside it.
const timed = (c: CalibrateResult) => PARAMS.filter((p) => c.ms[p]);
const ratios = (c: CalibrateResult) => ({
  jvp: Object.fromEntries(timed(c).map((p) => [p, c.ms[p]!.jvp / c.ms[p]!.forward])) as Partial<Record<Params, number>>,
  backprop: Object.fromEntries(timed(c).map((p) => [p, c.ms[p]!.backprop / c.ms[p]!.forward])) as Partial<Record<Params, number>>,
});
const SET_LABEL: Record<Params, string> = { full: 'full', lora: 'LoRA', prefix: 'prefix', prompt: 'prompt' };
const describe = (c: CalibrateResult) => {
  const r = ratios(c);
  const each = (f: (p: Params) => string) => timed(c).map((p) => f(p)).join(', ');
  return `JVP / forward: ${each((p) => `${SET_LABEL[p]} ${r.jvp[p]!.toFixed(2)}`)}; backprop / forward: ${each((p) => `${SET_LABEL[p]} ${r.backprop[p]!.toFixed(2)}`)} ` +
    `(forward ${each((p) => `${c.ms[p]!.forward.toFixed(0)} ms ${SET_LABEL[p]}`)}, B=16, T=${c.dims.map((d) => d.T).join('/')})`;
};
const calibrateOnly = numberOption('calibrate');
if (calibrateOnly !== undefined) {
  const c = await spawnJob<CalibrateResult>({ kind: 'calibrate', seed, params: PARAMS, batches: Math.max(1, calibrateOnly === 1 ? 6 : calibrateOnly), reps: 10 });
  console.log(describe(c));
  console.log(JSON.stringify({ ms: c.ms, ratios: ratios(c), dims: c.dims }));
  process.exit(0);
}
const fgCost = numberOption('fg-cost') ?? FG_COST;
let calibration: CalibrateResult | undefined;
if (rowsToRun.some((r) => r.startsWith('forward-grad/'))) {
  // Full and LoRA as always, and the other sets whose Forward-Grad rows run.
  const sets = PARAMS.filter((p) => CALIBRATED.includes(p) || rowsToRun.includes(`forward-grad/${p}`));
  calibration = await spawnJob<CalibrateResult>({ kind: 'calibrate', seed, params: sets, batches: 3, reps: 6 });
  const jvpRatios = Object.values(ratios(calibration).jvp) as number[];
  const measured = Math.round(jvpRatios.reduce((a, b) => a + b, 0) / jvpRatios.length);
  console.error(`${describe(calibration)}; Forward-Grad counts ${fgCost} forward passes per step` +
    `${measured !== fgCost ? ` (this run's measurement rounds to ${measured}: the machine is probably loaded; see FG_COST)` : ''} [${elapsed()}]`);
}

/**
 * The sweep's data, from train.tsv shuffled with a fixed seed: a validation set of VALIDATION.size records of at
 * least VALIDATION.minWords words (dev-like sentences rather than phrases), and a training pool of
 * VALIDATION.trainPool other records (disjoint from the validation set; loading 8K records instead of 67K keeps the
 * sweep's runs short, and a run draws at most a few thousand examples either way).
 */
function writeSweepData(dir: string): { evalFile: string; trainFile: string } {
  const lines = readFileSync(join(ROOT, '../shared/data/sst2/train.tsv'), 'utf8').split('\n');
  const header = lines[0]!;
  const records = lines.slice(1).filter((l) => l.trim());
  const random = seededRandom(12345);
  for (let i = records.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [records[i], records[j]] = [records[j]!, records[i]!];
  }
  const isSentence = (l: string) => l.split('\t')[0]!.trim().split(/\s+/).length >= VALIDATION.minWords;
  const validation: string[] = [], pool: string[] = [];
  for (const l of records) {
    if (validation.length < VALIDATION.size && isSentence(l)) validation.push(l);
    else if (pool.length < VALIDATION.trainPool) pool.push(l);
    if (validation.length >= VALIDATION.size && pool.length >= VALIDATION.trainPool) break;
  }
  const evalFile = join(dir, 'validation.tsv'), trainFile = join(dir, 'train-pool.tsv');
  writeFileSync(evalFile, `${header}\n${validation.join('\n')}\n`);
  writeFileSync(trainFile, `${header}\n${pool.join('\n')}\n`);
  return { evalFile, trainFile };
}

interface Row { method: Method; params: Params; lr: number; r: TrainResult }

function table(header: string[], rows: string[][], leftColumns = 2): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

async function runRow(method: Method, params: Params, lr: number, extra: Partial<TrainJob> = {}): Promise<Row> {
  const r = await spawnJob<TrainResult>({ kind: 'train', method, params, lr, budget, fgCost: fgCost!, seed, evalLimit, ...extra });
  console.error(`${LABEL[method]} ${params} lr ${lr}: ${r.steps} steps, accuracy ${pct(r.acc)}, loss ${r.firstLoss.toFixed(3)} -> ${r.lastLoss.toFixed(3)}, ` +
    `${r.wallSeconds.toFixed(0)} s, peak ${mb(r.measuredBytes).toFixed(0)} MiB (predicted ${mb(r.predictedBytes).toFixed(0)}) [${elapsed()}]`);
  return { method, params, lr, r };
}

if (sweep) {
  const dir = mkdtempSync(join(tmpdir(), 'tuneforge-zo-sweep-'));
  try {
    const sweepData = writeSweepData(dir);
    const grids = { ...SWEEP };
    for (const kv of (option('grid') ?? '').split(',').filter((x) => x.trim())) {
      const [k, v] = kv.split('=');
      const values = (v ?? '').split(':').map(Number);
      if (!values.length || values.some((x) => !(x > 0))) throw new Error(`--grid ${kv}: expected method/params=lr:lr:...`);
      grids[rowKey(k!)] = values;
    }
    const grid = rowsToRun.flatMap((key) => grids[key].map((lr) => ({ key, lr })));
    const results: (Row | undefined)[] = new Array(grid.length);
    const jobs = Math.max(1, numberOption('jobs') ?? 1);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < grid.length; i = next++) {
        const [method, params] = grid[i]!.key.split('/') as [Method, Params];
        results[i] = await runRow(method, params, grid[i]!.lr, sweepData);
      }
    };
    await Promise.all(Array.from({ length: jobs }, worker));
    // Accuracies within one standard error of the best (sqrt(p(1-p)/n), ~2.2 points at 500 records) count as ties: near
    // chance, a few records are noise. Among them the lower training loss of the last 20 steps wins.
    const best: Record<string, Row> = {};
    const n = evalLimit ?? VALIDATION.size;
    for (const key of new Set((results as Row[]).map((r) => `${r.method}/${r.params}`))) {
      const rs = (results as Row[]).filter((r) => `${r.method}/${r.params}` === key);
      const top = Math.max(...rs.map((r) => r.r.acc));
      const tied = rs.filter((r) => r.r.acc >= top - Math.sqrt((top * (1 - top)) / n));
      best[key] = tied.reduce((a, b) => (b.r.lastLoss < a.r.lastLoss ? b : a));
    }
    console.log(`\nlearning-rate sweep: budget ${budget} forward passes; trained on ${VALIDATION.trainPool} training records, scored on ${VALIDATION.size} other training records of >= ${VALIDATION.minWords} words${evalLimit ? ` (first ${evalLimit})` : ''}`);
    console.log(table(
      ['method', 'params', 'lr', 'steps', 'val acc', 'loss first 20', 'loss last 20', 'wall s', 'best'],
      (results as Row[]).map(({ method, params, lr, r }) => [LABEL[method], params, lr.toExponential(0), String(r.steps), pct(r.acc), r.firstLoss.toFixed(3), r.lastLoss.toFixed(3), r.wallSeconds.toFixed(0), best[`${method}/${params}`]!.lr === lr ? '*' : '']),
    ));
    console.log(`total wall time ${elapsed()}\n`);
    console.log(JSON.stringify({
      sweep_budget_forward_passes: budget, fg_cost: fgCost,
      best: Object.fromEntries(Object.entries(best).map(([k, v]) => [k, v.lr])),
      runs: (results as Row[]).map(({ method, params, lr, r }) => ({ method, params, lr, steps: r.steps, val_acc: r.acc, first_loss: r.firstLoss, last_loss: r.lastLoss, wall_s: Math.round(r.wallSeconds) })),
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}

let zeroShotAcc: number | null = null, zeroShotSeconds = 0, zeroShotPeak = 0;
if (zeroShot) {
  const z = await spawnJob<ZeroShotResult>({ kind: 'zero-shot', seed, evalLimit });
  zeroShotAcc = z.acc;
  zeroShotSeconds = z.seconds;
  zeroShotPeak = z.measuredBytes;
  console.error(`zero-shot accuracy ${pct(z.acc)} (${z.seconds.toFixed(0)} s, peak ${mb(z.measuredBytes).toFixed(0)} MiB) [${elapsed()}]`);
}

const rows: Row[] = [];
for (const key of rowsToRun) {
  const [method, params] = key.split('/') as [Method, Params];
  rows.push(await runRow(method, params, lrs[key]));
}
const totalSeconds = (performance.now() - started) / 1000;

const error = (r: TrainResult) => (r.predictedBytes - r.measuredBytes) / r.measuredBytes;
const errorDataT = (r: TrainResult) => (r.predictedDataTBytes - r.measuredBytes) / r.measuredBytes;
const signed = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
console.log(`\nSST-2 on stories260k at an equal budget of ${budget} forward-pass equivalents per run ` +
  `(backprop step = 3, ZO two-sided = 2, ZO-Cons = 5, Forward-Grad = ${fgCost}); dev accuracy on ${evalLimit ? `the first ${evalLimit}` : 'all 872'} dev sentences, seed ${seed}`);
if (calibration) console.log(`this run's ${describe(calibration)}`);
console.log(table(
  ['method', 'params', 'lr', 'steps', 'fwd passes', 'dev acc', 'loss first/last 20', 'wall s', 'steps s', 'measured MB', 'predicted MB', 'error %', `pred T=${DATA_MAX_T}`, 'error %', 'RSS end MB'],
  [
    ...(zeroShotAcc !== null ? [['zero-shot', '-', '-', '0', '0', pct(zeroShotAcc), '-', zeroShotSeconds.toFixed(0), '-', mb(zeroShotPeak).toFixed(0), '-', '-', '-', '-', '-']] : []),
    ...rows.map(({ method, params, lr, r }) => [
      LABEL[method], params, lr.toExponential(0), String(r.steps), String(r.steps * r.forwardsPerStep), pct(r.acc),
      `${r.firstLoss.toFixed(3)}/${r.lastLoss.toFixed(3)}`, r.wallSeconds.toFixed(0), r.stepSeconds.toFixed(0),
      mb(r.measuredBytes).toFixed(0), mb(r.predictedBytes).toFixed(0), signed(error(r)),
      mb(r.predictedDataTBytes).toFixed(0), signed(errorDataT(r)), mb(r.rssLastStepBytes).toFixed(0),
    ]),
  ],
));
console.log(`MB = MiB (2^20 bytes). measured = peak RSS (VmHWM) of the row's own process after train() (training, final dev evaluation, checkpoint); ` +
  `predicted = planMemory(config, plugins) for the recipe's config (sequence length planned: 512, the model's limit); pred T=${DATA_MAX_T} = the same plan at the ` +
  `data's longest sequence; error = (predicted - measured) / measured; RSS end = VmRSS after the last training step. wall s = the whole train() call ` +
  `(loading and tokenizing the 67K training records, compiling, steps, evaluation); steps s = the steps alone.`);
console.log(`total wall time ${(totalSeconds / 60).toFixed(1)} min\n`);

console.log(JSON.stringify({
  budget_forward_passes: budget,
  rows: rows.map(({ method, params, lr, r }) => ({
    method: LABEL[method], params, lr, steps: r.steps, forward_passes: r.steps * r.forwardsPerStep, acc: r.acc,
    wall_s: Math.round(r.wallSeconds * 10) / 10, measured_mb: Math.round(mb(r.measuredBytes) * 10) / 10,
    predicted_mb: Math.round(mb(r.predictedBytes) * 10) / 10, error: Math.round(error(r) * 1000) / 1000,
    [`predicted_t${DATA_MAX_T}_mb`]: Math.round(mb(r.predictedDataTBytes) * 10) / 10, [`error_t${DATA_MAX_T}`]: Math.round(errorDataT(r) * 1000) / 1000,
    rss_last_step_mb: Math.round(mb(r.rssLastStepBytes) * 10) / 10, steps_s: Math.round(r.stepSeconds * 10) / 10,
    first_loss: Math.round(r.firstLoss * 1000) / 1000, last_loss: Math.round(r.lastLoss * 1000) / 1000,
  })),
  zero_shot_acc: zeroShotAcc,
  ...(zeroShot ? { zero_shot_wall_s: Math.round(zeroShotSeconds * 10) / 10, zero_shot_measured_mb: Math.round(mb(zeroShotPeak) * 10) / 10 } : {}),
  forward_passes_per_step: { backprop: 3, zo_two_sided: 2, zo_cons: 5, forward_grad: fgCost },
  ...(calibration ? { calibration_ms: calibration.ms, measured_ratios: ratios(calibration) } : {}),
  eval_sentences: evalLimit ?? 872,
  seed,
  total_wall_s: Math.round(totalSeconds),
}));
