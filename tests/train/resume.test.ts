/**
 * Kill and resume: a run interrupted after its latest checkpoint and resumed from it ends with exactly the weights
 * (bit for bit) of the same run done in one go. That needs the parameters, the optimizer state, the data stream's
 * position, the learning-rate schedule and the per-step random numbers (LoRA dropout masks) all to be restored.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plugin } from '../../core/index.ts';
import type { TrainConfig } from '../../core/train/config.ts';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune, lora } from '../../plugins/index.ts';
import { bitDifferences, quiet, removeTempDirs, REPO, silentProgress, storiesMissing, tempDir, tinyConfig, writeTinyData } from './helpers.ts';

afterAll(removeTempDirs);

const missing = storiesMissing('resume tests');

async function run(config: TrainConfig, plugins: Plugin[], extra: { stopAfterSteps?: number } = {}) {
  const lines: string[] = [];
  const result = await train({ config, plugins, progress: silentProgress, log: (l) => { lines.push(l); quiet(l); }, ...extra });
  return { result, lines };
}

const latest = (runDir: string) => readFileSync(join(runDir, 'checkpoints', 'latest'), 'utf8').trim();

/** Uninterrupted vs. stopped after 7 of 12 steps (checkpoints every 3, so step 7's work is lost) and resumed. */
async function resumeMatchesUninterrupted(name: string, makePlugins: () => Plugin[], trainOptions: NonNullable<Parameters<typeof tinyConfig>[2]>['train']) {
  const dir = tempDir(`resume-${name}`);
  const data = writeTinyData(dir);
  const overrides = { train: { steps: 12, ...trainOptions }, checkpoint: { every: 3, keep: 2 } };
  const straight = await run(tinyConfig(data, join(dir, 'straight'), overrides), makePlugins());
  expect(straight.result.finished).toBe(true);

  const cfg = tinyConfig(data, join(dir, 'interrupted'), overrides);
  const first = await run(cfg, makePlugins(), { stopAfterSteps: 7 });
  expect(first.result.finished).toBe(false);
  expect(first.result.step).toBe(7);
  expect(latest(cfg.output)).toBe('step-000006');

  const second = await run(cfg, makePlugins());
  expect(second.lines.some((l) => /resumed from .*step-000006 at step 6/.test(l))).toBe(true);
  expect(second.result.finished).toBe(true);
  expect(second.result.step).toBe(12);

  // The comparison would be vacuous if nothing trained: the weights moved, and differently at step 7 than at 12.
  expect(bitDifferences(first.result.trained, straight.result.trained).length).toBe(straight.result.trained.size);
  expect(second.result.trained.size).toBe(straight.result.trained.size);
  expect(bitDifferences(second.result.trained, straight.result.trained)).toEqual([]);
  return straight.result.trained;
}

describe.skipIf(missing)('kill and resume', () => {
  test('full fine-tuning (AdamW, warmup + linear decay, clipping) resumes to identical weights', async () => {
    const trained = await resumeMatchesUninterrupted('full', () => [fullFinetune()], { warmupSteps: 2, maxGradNorm: 0.5 });
    expect(trained.size).toBe(1 + 5 * 9 + 1); // every weight of stories260k: embeddings (tied head), 5 blocks of 9, final norm
  }, 30_000);

  test('LoRA with dropout (masks from the per-step RNG) and micro-batches resumes to identical weights', async () => {
    const plugins = () => [lora({ r: 4, alpha: 8, dropout: 0.2, targets: ['q_proj', 'v_proj'] })];
    const trained = await resumeMatchesUninterrupted('lora', plugins, { microBatchSize: 2, schedule: 'cosine' });
    expect([...trained.keys()].every((n) => /\.lora_[AB]\.weight$/.test(n))).toBe(true);
    expect(trained.size).toBe(5 * 2 * 2); // 5 layers x (q_proj, v_proj) x (A, B)
  }, 30_000);

  test('a child process killed with SIGKILL after a checkpoint resumes to identical weights', async () => {
    const dir = tempDir('resume-kill');
    const data = writeTinyData(dir);
    const overrides = { train: { steps: 16, batchSize: 4 }, checkpoint: { every: 2, keep: 2 } };
    const killedDir = join(dir, 'killed');
    // The child trains the same config; a step:after hook slows it down (without touching any numbers) so the
    // kill lands in the middle of the run rather than after it has finished.
    const script = join(dir, 'child.ts');
    writeFileSync(script, [
      `import { train } from ${JSON.stringify(join(REPO, 'core/train/trainer.ts'))};`,
      `import { parseTrainConfig } from ${JSON.stringify(join(REPO, 'core/train/config.ts'))};`,
      `import { fullFinetune } from ${JSON.stringify(join(REPO, 'plugins/index.ts'))};`,
      `const config = parseTrainConfig(JSON.parse(${JSON.stringify(JSON.stringify(tinyConfig(data, killedDir, overrides)))}));`,
      `const slow = { name: 'test:slow', 'step:after': () => new Promise((r) => setTimeout(r, 120)) };`,
      `await train({ config, plugins: [fullFinetune(), slow], log: () => {}, progress: { write: () => true } });`,
      `console.log('finished');`,
    ].join('\n'));
    const child = Bun.spawn([process.execPath, script], { cwd: dir, stdout: 'pipe', stderr: 'pipe' });
    const latestFile = join(killedDir, 'checkpoints', 'latest');
    const deadline = Date.now() + 20_000;
    while (!existsSync(latestFile) && child.exitCode === null && Date.now() < deadline) await Bun.sleep(10);
    const runningWhenKilled = child.exitCode === null;
    child.kill('SIGKILL');
    await child.exited;
    if (!runningWhenKilled) throw new Error(`the child ended before it was killed:\n${await new Response(child.stderr).text()}`);
    expect(existsSync(latestFile)).toBe(true);
    expect(child.signalCode).toBe('SIGKILL');
    expect(existsSync(join(killedDir, 'export'))).toBe(false); // it really did not finish

    const straight = await run(tinyConfig(data, join(dir, 'straight'), overrides), [fullFinetune()]);
    const resumed = await run(tinyConfig(data, killedDir, overrides), [fullFinetune()]);
    const from = resumed.lines.find((l) => l.startsWith('resumed from'));
    expect(from).toMatch(/at step \d+$/);
    const step = Number(from!.match(/at step (\d+)$/)![1]);
    expect(step).toBeGreaterThanOrEqual(2);
    expect(step).toBeLessThan(16);
    expect(resumed.result.step).toBe(16);
    expect(bitDifferences(resumed.result.trained, straight.result.trained)).toEqual([]);
    expect(resumed.result.trained.size).toBe(straight.result.trained.size);
  }, 40_000);
});
