/**
 * Techniques combined on stories260k: the zeroth-order family and Forward-Grad perturb prefix, prompt and adapter
 * parameters (as ZO-Bench does), NF4 bases carry adapters, prefixes and prompts; impossible combinations are refused
 * before the weights load, every problem in one error.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plugin } from '../../core/index.ts';
import { PluginError } from '../../core/plugin/index.ts';
import { train } from '../../core/train/trainer.ts';
import { adapters, forwardGrad, nf4, prefix, prompt, pTuning, zo } from '../../plugins/index.ts';
import { quiet, removeTempDirs, silentProgress, storiesMissing, tempDir, tinyConfig, writeTinyData } from './helpers.ts';

afterAll(removeTempDirs);
const missing = storiesMissing('composition tests');

const ROWS: { name: string; plugins: () => Plugin[]; lr: number; trains: RegExp }[] = [
  { name: 'ZO-SGD + prefix', plugins: () => [prefix({ virtualTokens: 4 }), zo({ eps: 1e-1 })], lr: 1e-2, trains: /^prompt_embeddings$/ },
  { name: 'ZO-Adam + prompt tuning', plugins: () => [prompt({ virtualTokens: 4 }), zo({ variant: 'adam', eps: 1e-1 })], lr: 1e-2, trains: /^prompt_embeddings$/ },
  { name: 'ZO-SGD + series adapters', plugins: () => [adapters({ bottleneckSize: 8, init: 'bert' }), zo({ eps: 1e-2 })], lr: 1e-3, trains: /adapter_(down|up)\.weight$/ },
  { name: 'Forward-Grad + prefix', plugins: () => [prefix({ virtualTokens: 4 }), forwardGrad()], lr: 1e-3, trains: /^prompt_embeddings$/ },
  { name: 'Forward-Grad + P-tuning', plugins: () => [pTuning({ virtualTokens: 4 }), forwardGrad()], lr: 1e-3, trains: /^prompt_encoder\./ },
  { name: 'NF4 + parallel adapters', plugins: () => [nf4(), adapters({ kind: 'parallel', bottleneckSize: 8 })], lr: 1e-2, trains: /adapter_(down|up)\.weight$/ },
  { name: 'NF4 + prefix', plugins: () => [nf4(), prefix({ virtualTokens: 4 })], lr: 1e-2, trains: /^prompt_embeddings$/ },
];

describe.skipIf(missing)('compositions', () => {
  for (const row of ROWS) {
    test(`${row.name}: trains only the technique's parameters, finite losses`, async () => {
      const dir = tempDir('compose');
      const config = tinyConfig(writeTinyData(dir), join(dir, 'run'), { train: { steps: 3, lr: row.lr } });
      const result = await train({ config, plugins: row.plugins(), progress: silentProgress, log: quiet });
      expect(result.trained.size).toBeGreaterThan(0);
      for (const name of result.trained.keys()) expect(name).toMatch(row.trains);
      const losses = readFileSync(join(config.output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number }).flatMap((m) => (m.loss === undefined ? [] : [m.loss]));
      expect(losses.length).toBe(3);
      for (const l of losses) expect(Number.isFinite(l)).toBe(true);
    });
  }

  test('impossible combinations: every problem at once, before any weight is read', async () => {
    const dir = tempDir('compose-bad');
    const config = tinyConfig(writeTinyData(dir), join(dir, 'run'));
    let error: unknown;
    try {
      await train({ config, plugins: [prefix(), prompt(), zo(), forwardGrad()], progress: silentProgress, log: quiet });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PluginError);
    const problems = (error as PluginError).problems.join('\n');
    expect(problems).toMatch(/'tuneforge:prefix' cannot be combined with 'tuneforge:prompt'/);
    expect(problems).toMatch(/cannot be combined with 'tuneforge:forward-grad'/);
  });
});
