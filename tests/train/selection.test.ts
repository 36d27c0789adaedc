/**
 * Model selection: a validation split held out of the training data, the baseline evaluation, the best checkpoint
 * (kept, restored and exported instead of the last step), early stopping, and kill-and-resume in the middle of
 * all of them giving exactly the uninterrupted run.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadLatestCheckpoint } from '../../core/checkpoint/index.ts';
import type { Plugin } from '../../core/index.ts';
import { readAll } from '../../core/io/safetensors.ts';
import { readMetrics } from '../../core/report/index.ts';
import type { TrainConfig } from '../../core/train/config.ts';
import { loadRunData } from '../../core/train/setup.ts';
import { bestCheckpointDir, train } from '../../core/train/trainer.ts';
import { loadTokenizer } from '../../core/tokenizer/index.ts';
import { fullFinetune, lora } from '../../plugins/index.ts';
import { bitDifferences, quiet, removeTempDirs, silentProgress, STORIES, storiesMissing, tempDir, tinyConfig, writeTinyData } from './helpers.ts';

afterAll(removeTempDirs);

const missing = storiesMissing('model selection tests');

async function run(config: TrainConfig, plugins: Plugin[], extra: { stopAfterSteps?: number } = {}) {
  const lines: string[] = [];
  const result = await train({ config, plugins, progress: silentProgress, log: (l) => { lines.push(l); quiet(l); }, ...extra });
  return { result, lines, records: readMetrics(join(config.output, 'metrics.jsonl')) };
}

/** Records without what varies between runs of the same numbers (time, speed, memory). */
const numbersOnly = (records: Record<string, unknown>[]) =>
  records.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !/^(time|tok_s|step_s|compute_s|update_s|rss_mb|peak_rss_mb)$/.test(k))));

const key = (ids: ArrayLike<number>) => Array.from(ids).join(',');

describe.skipIf(missing)('validation split', () => {
  test('is held out of the training data: disjoint from it, the sizes adding up, the same for a given seed', async () => {
    const dir = tempDir('validation-split');
    // Distinct records, so disjointness can be checked on the token sequences.
    const file = join(dir, 'distinct.jsonl');
    writeFileSync(file, Array.from({ length: 40 }, (_, i) => JSON.stringify({ prompt: `Story ${i}:`, completion: ` the cat number ${i} sat.` })).join('\n'));
    const tok = await loadTokenizer(STORIES);
    const cfg = tinyConfig(file, join(dir, 'run'), { data: { validationFraction: 0.25 } });
    const all = await loadRunData(tinyConfig(file, join(dir, 'all')), tok, () => {}, 512);
    const a = await loadRunData(cfg, tok, () => {}, 512);
    const b = await loadRunData(cfg, tok, () => {}, 512);
    expect(a.validation.length).toBe(10);
    expect(a.train.length + a.validation.length).toBe(all.train.length);
    const trainKeys = new Set(a.train.map((e) => key(e.inputIds)));
    expect(a.validation.some((e) => trainKeys.has(key(e.inputIds)))).toBe(false);
    expect(a.validation.map((e) => key(e.inputIds))).toEqual(b.validation.map((e) => key(e.inputIds)));

    // A choice task: validation records come out of the training file, scored on every choice; eval stays the dev file.
    const tsv = join(dir, 'labels.tsv');
    writeFileSync(tsv, `sentence\tlabel\n${Array.from({ length: 20 }, (_, i) => `review number ${i} \t${i % 2}`).join('\n')}\n`);
    const choice = tinyConfig(file, join(dir, 'choice'), {
      data: { validationFraction: 0.2 },
      task: { choice: { template: 'Review: {text}\nSentiment:', choices: [' negative', ' positive'], trainFile: tsv, evalFile: tsv } },
    });
    const c = await loadRunData(choice, tok, () => {}, 512);
    expect(c.choiceValidation.length).toBe(4);
    expect(c.train.length).toBe(16);
    expect(c.choiceEval.length).toBe(20);
    const trainPrompts = new Set(c.train.map((e) => key(e.inputIds)));
    for (const item of c.choiceValidation) {
      expect(item.options.every((o) => o.inputIds.length > 0)).toBe(true);
      expect(trainPrompts.has(key(item.options[item.label]!.inputIds))).toBe(false);
    }
  }, 30_000);
});

describe.skipIf(missing)('baseline, best checkpoint and early stopping', () => {
  test('the baseline is a step-0 record with the same metrics as later evaluations; the final record carries the plan and the peak', async () => {
    const dir = tempDir('baseline');
    const cfg = tinyConfig(writeTinyData(dir, 40), join(dir, 'run'), { data: { validationFraction: 0.25 }, eval: { every: 3 }, train: { steps: 6 } });
    const { records, lines } = await run(cfg, [fullFinetune()]);
    const evals = records.filter((r) => 'val_loss' in r && r.final === undefined);
    expect(evals.map((r) => r.step)).toEqual([0, 3, 6]);
    expect(Object.keys(evals[0]!).filter((k) => k.startsWith('val_')).sort()).toEqual(Object.keys(evals[2]!).filter((k) => k.startsWith('val_')).sort());
    expect(evals[2]!.val_loss).toBeLessThan(evals[0]!.val_loss as number);
    const final = records.at(-1)!;
    expect(final.final).toBe(1);
    expect(final.val_loss).toBe(evals[2]!.val_loss);
    expect(final.predicted_peak_mb).toBeGreaterThan(0);
    expect(final.peak_rss_mb).toBeGreaterThan(0);
    expect(lines.some((l) => /^baseline \(before training\): val_loss/.test(l))).toBe(true);
    expect(lines.some((l) => /val_loss\s+before \d\.\d{4}\s+after \d\.\d{4}/.test(l))).toBe(true);
    expect(existsSync(join(cfg.output, 'plan.json'))).toBe(true);
    expect(existsSync(join(cfg.output, 'config.json'))).toBe(true);
  }, 30_000);

  test('checkpoint.best keeps the best evaluation, restores it at the end and exports it, not the last step', async () => {
    const dir = tempDir('best');
    // "Best" by the highest validation loss is the untrained model (step 0): a choice the last step can never win,
    // so the test knows exactly what must be exported (LoRA's B matrices at their zero start).
    const cfg = tinyConfig(writeTinyData(dir, 40), join(dir, 'run'), {
      data: { validationFraction: 0.25 }, eval: { every: 2 }, train: { steps: 6, lr: 1e-2 },
      checkpoint: { best: { metric: 'val_loss', mode: 'max' } }, export: { adapters: true },
    });
    const { result, records } = await run(cfg, [lora({ r: 4, alpha: 8, targets: ['q_proj', 'v_proj'] })]);
    expect(result.bestStep).toBe(0);
    const final = records.at(-1)!;
    expect(final.best_step).toBe(0);
    expect(final.val_loss).toBe(records.find((r) => r.step === 0)!.val_loss);
    const best = await loadLatestCheckpoint(bestCheckpointDir(cfg.output));
    expect(best!.step).toBe(0);
    for (const [name, t] of result.trained) if (name.includes('lora_B')) expect((t.data as Float32Array).every((v) => v === 0)).toBe(true);
    const exported = await readAll(join(cfg.output, 'export', 'adapter', 'adapter_model.safetensors'));
    const bs = [...exported.entries()].filter(([n]) => n.includes('lora_B'));
    expect(bs.length).toBe(10);
    for (const [, t] of bs) expect((t.data as Float32Array).every((v) => v === 0)).toBe(true);
    // The last step's weights stay in the regular checkpoint (resumable), and they did move.
    const last = await loadLatestCheckpoint(cfg.output);
    expect(last!.step).toBe(6);
    expect([...last!.tensors].some(([n, t]) => n.includes('lora_B') && (t.data as Float32Array).some((v) => v !== 0))).toBe(true);

    // The natural choice (lowest validation loss) picks the evaluation with the lowest val_loss.
    const natural = tinyConfig(writeTinyData(dir, 40, 'b.jsonl'), join(dir, 'natural'), {
      data: { validationFraction: 0.25 }, eval: { every: 2 }, train: { steps: 6, lr: 1e-2 }, checkpoint: { best: { metric: 'val_loss' } },
    });
    const n = await run(natural, [fullFinetune()]);
    const evals = n.records.filter((r) => r.final === undefined && typeof r.val_loss === 'number');
    const argmin = evals.reduce((a, b) => ((b.val_loss as number) < (a.val_loss as number) ? b : a));
    expect(n.result.bestStep).toBe(argmin.step as number);
    expect(n.records.at(-1)!.val_loss).toBe(argmin.val_loss);
  }, 60_000);

  test('early stopping ends the run after `patience` evaluations without improvement, and says so', async () => {
    const dir = tempDir('early');
    const cfg = tinyConfig(writeTinyData(dir, 40), join(dir, 'run'), {
      data: { validationFraction: 0.25 }, eval: { every: 1, earlyStopping: { patience: 2 } }, train: { steps: 10 },
      checkpoint: { best: { metric: 'val_loss', mode: 'max' } },
    });
    const { result, records, lines } = await run(cfg, [fullFinetune()]);
    expect(result.finished).toBe(true);
    expect(result.step).toBe(2);
    expect(records.at(-1)!.stopped_early).toBe(1);
    expect(lines.some((l) => /^early stopping at step 2: val_loss has not improved for 2 evaluations/.test(l))).toBe(true);
  }, 30_000);

  test('refuses, before training, a best metric the evaluation does not report and early stopping without a metric', async () => {
    const dir = tempDir('selection-refusals');
    const data = writeTinyData(dir, 20);
    const noValidation = tinyConfig(data, join(dir, 'a'), { checkpoint: { best: { metric: 'val_accuracy' } } });
    await expect(run(noValidation, [fullFinetune()])).rejects.toThrow(/checkpoint\.best\.metric is 'val_accuracy', but the run has no evaluation data: hold out a validation split with data\.validationFraction/);
    const noMetric = tinyConfig(data, join(dir, 'b'), { data: { validationFraction: 0.2 }, eval: { every: 2, earlyStopping: { patience: 2 } } });
    await expect(run(noMetric, [fullFinetune()])).rejects.toThrow(/eval\.earlyStopping needs checkpoint\.best/);
    expect(existsSync(join(dir, 'a', 'checkpoints'))).toBe(false);
  }, 30_000);
});

describe.skipIf(missing)('kill and resume with model selection', () => {
  /** The same config done in one go and killed after `stopAfter` steps, then resumed: identical in every number. */
  async function resumeMatches(name: string, overrides: NonNullable<Parameters<typeof tinyConfig>[2]>, stopAfter: number) {
    const dir = tempDir(`selection-resume-${name}`);
    const data = writeTinyData(dir, 40);
    const straight = await run(tinyConfig(data, join(dir, 'straight'), overrides), [fullFinetune()]);
    const cfg = tinyConfig(data, join(dir, 'interrupted'), overrides);
    const first = await run(cfg, [fullFinetune()], { stopAfterSteps: stopAfter });
    expect(first.result.finished).toBe(false);
    const second = await run(cfg, [fullFinetune()]);
    expect(second.lines.some((l) => /resumed from/.test(l))).toBe(true);
    expect(second.result.step).toBe(straight.result.step);
    expect(second.result.bestStep).toBe(straight.result.bestStep);
    expect(bitDifferences(second.result.trained, straight.result.trained)).toEqual([]);
    expect(numbersOnly(second.records)).toEqual(numbersOnly(straight.records));
    return straight;
  }

  test('the best checkpoint chosen before the kill survives it, and the resumed run picks the same one', async () => {
    const straight = await resumeMatches('best', {
      data: { validationFraction: 0.25 }, eval: { every: 2 }, train: { steps: 10, lr: 2e-2 },
      checkpoint: { every: 3, best: { metric: 'val_loss' } },
    }, 7);
    expect(straight.result.bestStep).toBeGreaterThan(0);
  }, 60_000);

  test('early stopping counted across the kill stops at the same step', async () => {
    const straight = await resumeMatches('early', {
      data: { validationFraction: 0.25 }, eval: { every: 2, earlyStopping: { patience: 3, minDelta: 100 } }, train: { steps: 20 },
      checkpoint: { every: 1, best: { metric: 'val_loss' } },
    }, 3);
    expect(straight.result.step).toBe(6); // the baseline is the best (nothing improves by 100), then 3 evaluations
    expect(straight.records.at(-1)!.stopped_early).toBe(1);
  }, 60_000);
});
