/**
 * A synthetic run folder for the report's tests (html.test.ts, html.browser.test.ts, the CLI test): the four files
 * a training run writes, with realistic shapes and values: a decaying noisy loss, warmup + cosine learning rate,
 * evaluation every 50 steps (dev/test set and validation split), a step-0 baseline and a final record scoring the best
 * checkpoint.
 * Not part of the library.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from '../data/rng.ts';

/** Options of {@link writeSyntheticRun}. */
export interface SyntheticRunOptions {
  steps?: number;
  /** Varies the noise and the curves, so two runs differ. */
  seed?: number;
  /** Plant `<script>` in the config and the generations. */
  hostile?: boolean;
  /** Which of the four files to write. Default all. */
  files?: readonly ('metrics.jsonl' | 'plan.json' | 'config.json' | 'samples.json')[];
}

/** The figures the tests check for. */
export const SYNTHETIC = {
  baseline: { eval_accuracy: 0.4908, eval_loss: 0.7123, val_accuracy: 0.4871, val_loss: 0.7188 },
  /** The best checkpoint's evaluation: at step 250 (the final record's `best_step`) in runs longer than that. */
  final: { eval_accuracy: 0.8312, eval_loss: 0.4187, val_accuracy: 0.8201, val_loss: 0.4302 },
  bestStep: 250,
  predictedPeakMb: 512.5,
  hostile: '<script>window.__pwned = 1</script>',
};

/** A small deterministic PRNG, so fixtures are the same on every run. */
const rng = mulberry32;

/** Writes a run folder `dir` (created) and returns it. */
export function writeSyntheticRun(dir: string, opts: SyntheticRunOptions = {}): string {
  const steps = opts.steps ?? 300;
  const seed = opts.seed ?? 1;
  const files = new Set(opts.files ?? ['metrics.jsonl', 'plan.json', 'config.json', 'samples.json']);
  const rand = rng(seed);
  mkdirSync(dir, { recursive: true });
  const t0 = Date.parse('2026-12-02T20:42:43.000Z');
  let t = t0;
  const time = () => new Date(t).toISOString();
  // Evaluations rise from the baseline to the best checkpoint's figures, then drift back a little (overfitting).
  const best = steps > SYNTHETIC.bestStep ? SYNTHETIC.bestStep : steps;
  const evalAt = (s: number): Record<string, number> => {
    const p = s <= best ? (1 - Math.exp(-s / 60)) / (1 - Math.exp(-best / 60)) : 1;
    const keys = Object.keys(SYNTHETIC.final) as (keyof typeof SYNTHETIC.final)[];
    return Object.fromEntries(keys.map((k) => {
      const [b, f] = [SYNTHETIC.baseline[k], SYNTHETIC.final[k]];
      const worse = f > b ? -1 : 1;
      return [k, s === best ? f : b + (f - b) * p + (s > best ? worse * 2e-4 * (s - best) : 0) + 0.008 * (rand() - 0.5)];
    }));
  };

  const lines: object[] = [{ time: time(), step: 0, ...SYNTHETIC.baseline }];
  let peak = 0;
  for (let step = 1; step <= steps; step++) {
    const warm = Math.min(1, step / 20);
    const lr = 3e-3 * warm * (0.5 + 0.5 * Math.cos((Math.PI * step) / steps));
    const loss = 0.3 + (4.9 + seed * 0.2) * Math.exp(-step / 40) + 0.25 * (rand() - 0.5);
    const tokens = Math.round(800 + 300 * (rand() - 0.5));
    const tokS = 11000 + 2500 * (rand() - 0.5) - (step < 4 ? 8000 : 0); // the first steps compile
    const stepS = tokens / tokS;
    const rss = 200 + 100 * (1 - Math.exp(-step / 60)) + 30 * rand();
    peak = Math.max(peak, rss + 120 + 40 * rand());
    t += stepS * 1000;
    const spike = rand() < 0.02 ? 8 : 1;
    const rec: Record<string, number | string> = {
      time: time(), step, total_steps: steps, loss, lr, tokens, tok_s: tokS, step_s: stepS, compute_s: stepS * 0.98, update_s: stepS * 0.01,
      rss_mb: rss, peak_rss_mb: peak, predicted_peak_mb: SYNTHETIC.predictedPeakMb, optimizer_mb: 0.35, grad_norm: spike * (0.4 + 2 * Math.exp(-step / 50) + 0.2 * rand()),
    };
    if (step % 50 === 0 && step < steps) Object.assign(rec, evalAt(step));
    lines.push(rec);
  }
  t += 4000;
  // The final record, as the trainer writes it: the best checkpoint's figures, restored and scored.
  lines.push({ time: time(), step: steps, ...SYNTHETIC.final, final: 1, predicted_peak_mb: SYNTHETIC.predictedPeakMb, peak_rss_mb: peak, ...(best < steps ? { best_step: best } : {}) });
  if (files.has('metrics.jsonl')) writeFileSync(join(dir, 'metrics.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');

  const MiB = 2 ** 20;
  const items = [
    { component: 'runtime (Bun, onnxruntime, libraries, trainer)', bytes: 180 * MiB },
    { component: 'weights (float32)', bytes: 1.1 * MiB, note: '292,160 parameters' },
    { component: 'gradients', bytes: 0.09 * MiB, note: '23,040 trainable' },
    { component: 'optimizer state (adamw)', bytes: 0.18 * MiB },
    { component: 'activations and temporaries', bytes: 250 * MiB, note: 'peak of the step at B=16, T=128, beyond the gradients' },
    { component: 'compiled sessions', bytes: 80.97 * MiB, note: '3,120 equations, 12 MiB folded constants' },
    { component: 'batch', bytes: 0.16 * MiB },
  ];
  const plan = {
    model: '../shared/models/stories260k', parameters: 292160, trainableParameters: 23040, dims: { B: 16, T: 128 }, microBatchSize: 16,
    accumulationSteps: 1, checkpointing: false, items, totalBytes: items.reduce((s, i) => s + i.bytes, 0),
  };
  if (files.has('plan.json')) writeFileSync(join(dir, 'plan.json'), JSON.stringify(plan, null, 2));

  const config = {
    model: '../shared/models/stories260k', output: dir, seed,
    data: { train: opts.hostile ? `data/${SYNTHETIC.hostile}.jsonl` : 'data/sst2.jsonl', maxLength: 128, evalFraction: 0.05 },
    train: { steps, batchSize: 16, lr: 3e-3, schedule: 'cosine', warmupSteps: 20, optimizer: 'adamw' },
    eval: { every: 50 },
    plugins: [{ name: 'lora', options: { r: 8, alpha: 16, targets: 'all-linear' } }],
  };
  if (files.has('config.json')) writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));

  const prompts = ['Review: a gripping, beautifully shot film.\nSentiment:', 'Review: dull and far too long.\nSentiment:', 'Once upon a time'];
  const samples = {
    before: prompts.map((prompt, i) => ({ prompt, completion: i === 1 && opts.hostile ? ` ${SYNTHETIC.hostile} the end` : ' the little dog ran to the park.' })),
    after: prompts.map((prompt, i) => ({ prompt, completion: [' positive', ' negative', ' there was a girl named Lily.'][i]! })),
  };
  if (files.has('samples.json')) writeFileSync(join(dir, 'samples.json'), JSON.stringify(samples, null, 2));
  return dir;
}
