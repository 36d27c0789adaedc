/** Shared set-up of the trainer tests: tiny datasets in temp folders, configs on stories260k, tensor comparison. */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProgressStream } from '../../core/report/index.ts';
import { parseTrainConfig, type TrainConfig, type TrainConfigInput } from '../../core/train/config.ts';
import { SHARED, STORIES } from '../models/fixtures.ts';

export { SHARED, STORIES };

/** The repository root (for child processes and absolute imports of the trainer). */
export const REPO = join(import.meta.dir, '../..');

/** True (and a warning printed once per file) when the shared stories260k model is absent. */
export function storiesMissing(topic: string): boolean {
  const missing = !existsSync(join(STORIES, 'config.json'));
  if (missing) console.warn(`skipping ${topic}: the stories260k model is absent (${STORIES}); see README (../shared)`);
  return missing;
}

const created: string[] = [];

/** A fresh folder under the OS temp dir; removed by {@link removeTempDirs} unless TUNEFORGE_TEST_KEEP is set. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tuneforge-${prefix}-`));
  created.push(dir);
  return dir;
}

/** Deletes the folders `tempDir` made (call from `afterAll`). */
export function removeTempDirs(): void {
  if (process.env.TUNEFORGE_TEST_KEEP) return;
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

const SUBJECTS = ['the cat', 'a dog', 'Lily', 'Tom', 'the bird', 'mom', 'the little girl', 'a big fish'];
const ACTIONS = ['ran home', 'sat down', 'ate a cake', 'saw the sun', 'played with a ball', 'was very happy', 'went to sleep', 'found a box'];

/**
 * Writes `count` short prompt/completion records (a few tokens each, lengths varying) as JSONL into `dir` and
 * returns the file's path.
 */
export function writeTinyData(dir: string, count = 32, name = 'train.jsonl'): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const completion = ` ${ACTIONS[(i * 3 + 1) % ACTIONS.length]}${i % 3 === 0 ? ' and smiled' : ''}.`;
    lines.push(JSON.stringify({ prompt: `${SUBJECTS[i % SUBJECTS.length]}`, completion }));
  }
  const path = join(dir, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** A validated config for a tiny run on stories260k; `overrides` are merged one level deep. */
export function tinyConfig(dataFile: string, output: string, overrides: Partial<TrainConfigInput> = {}): TrainConfig {
  const { train, data, checkpoint, export: exp, eval: ev, ...rest } = overrides;
  return parseTrainConfig({
    model: STORIES,
    output,
    seed: 3,
    data: { train: dataFile, maxLength: 32, ...data },
    train: { steps: 6, batchSize: 4, lr: 1e-3, ...train },
    checkpoint: { ...checkpoint },
    export: { merged: false, adapters: false, ...exp },
    eval: { ...ev },
    ...rest,
  });
}

/** Discards the trainer's log lines (set TUNEFORGE_TEST_LOG=1 to see them; TUNEFORGE_TEST_KEEP=1 keeps temp folders). */
export const quiet = (line: string): void => {
  if (process.env.TUNEFORGE_TEST_LOG) console.error(line);
};

/** A progress stream that swallows everything (tests run without a terminal bar). */
export const silentProgress: ProgressStream = { write: () => true, isTTY: false };

/** Names of tensors whose bytes differ between two maps (the plugin kit's check, shared). */
export { bitDifferences } from '../../testing/resume-check.ts';

/** The records of a JSONL file (metrics.jsonl, the probe plugin's log). */
export function readJsonl(path: string): Record<string, number>[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, number>);
}
