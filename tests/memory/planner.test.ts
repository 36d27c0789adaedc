/**
 * The memory planner against real runs on stories260k: its prediction holds for a run measured in its own process;
 * a budget too small for the batch makes `train()` split it into micro-batches with gradient accumulation and land on
 * the same weights as the unsplit run; a budget too small for anything is refused, by `train()` and by `plan`, with
 * the breakdown and the smallest changes that would fit; `plan --json` is a plan whose total is its items' sum.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostTensor, Plugin } from '../../core/index.ts';
import { BudgetError, createPlanner, type MemoryPlan } from '../../core/memory/index.ts';
import { train } from '../../core/train/trainer.ts';
import { loadPlanData, plannerForData } from '../../core/train/plan-run.ts';
import { RESULT_TAG, type MemoryCase, type MemoryResult } from '../../benchmarks/lib/memory-run.ts';
import { fullFinetune } from '../../plugins/index.ts';
import { quiet, readJsonl, removeTempDirs, REPO, silentProgress, STORIES, storiesMissing, tempDir, tinyConfig, writeTinyData } from '../train/helpers.ts';

afterAll(removeTempDirs);

const missing = storiesMissing('memory planner tests');
const MAIN = join(REPO, 'cli', 'main.ts');
const MB = 2 ** 20;

async function run(args: string[], cwd = REPO): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = Bun.spawn([process.execPath, ...args], { cwd, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, NO_COLOR: '1' } });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

/** max |a - b| / max |b| over one tensor. */
function relDiff(a: HostTensor, b: HostTensor): number {
  const x = a.data as Float32Array, y = b.data as Float32Array;
  let diff = 0, scale = 0;
  for (let i = 0; i < y.length; i++) {
    diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  return diff / scale;
}

/** Records the rows of every forward/backward pass (step:feeds is called once per micro-batch). */
function microBatchProbe(rows: number[]): Plugin {
  return { name: 'test:micro-batches', 'step:feeds': (ctx) => void rows.push(ctx.dims.B!) };
}

describe.skipIf(missing)('memory planner', () => {
  test('the prediction is within 15% of the measured peak of the same run, in its own process', async () => {
    // The benchmark's runner: plans, then trains 3 steps of 4 x 64-token packed sequences; the peak is VmHWM.
    const c: MemoryCase = { name: 'test', model: STORIES, method: 'full', checkpointing: false, B: 4, T: 64, steps: 3 };
    const r = await run([join(REPO, 'benchmarks', 'lib', 'memory-run.ts'), JSON.stringify(c)]);
    expect(r.code).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith(RESULT_TAG));
    expect(line).toBeDefined();
    const result = JSON.parse(line!.slice(RESULT_TAG.length)) as MemoryResult;
    const error = result.predictedBytes / result.measuredBytes - 1;
    if (process.env.TUNEFORGE_TEST_LOG) console.log(`predicted ${(result.predictedBytes / MB).toFixed(1)} MB, measured ${(result.measuredBytes / MB).toFixed(1)} MB (${(100 * error).toFixed(1)}%)`);
    expect(result.measuredBytes).toBeGreaterThan(50 * MB); // a real measurement, not a fallback
    expect(Math.abs(error)).toBeLessThan(0.15);
  }, 30_000);

  test('a budget below the batch\'s plan: smaller micro-batches with accumulation, the same weights', async () => {
    const dir = tempDir('memory-budget');
    const data = writeTinyData(dir);
    // SGD without momentum or clipping: the update is lr x gradient, so split and unsplit batches compare cleanly.
    const train8 = { steps: 2, batchSize: 8, optimizer: 'sgd', momentum: 0, lr: 0.5, schedule: 'constant', maxGradNorm: null, padMultiple: 1 } as const;
    const plugins = () => [fullFinetune()];
    // The planner the trainer uses: sized by the tokenised data (its lengths, batch shapes and bytes).
    const planConfig = tinyConfig(data, join(dir, 'plan'), { train: train8 });
    const planner = await plannerForData(planConfig, plugins(), await loadPlanData(planConfig, quiet));
    const whole = planner.plan({ microBatchSize: 8, checkpointing: false }), half = planner.plan({ microBatchSize: 4, checkpointing: false });
    expect(half.totalBytes).toBeLessThan(whole.totalBytes);
    const budget = Math.floor((half.totalBytes + whole.totalBytes) / 2);

    const runs: Record<string, { trained: Map<string, HostTensor>; rows: number[]; logs: string[]; dir: string }> = {};
    for (const [label, memory] of [['budget', { budget: `${budget}B` }], ['unsplit', {}]] as const) {
      const rows: number[] = [], logs: string[] = [];
      const config = tinyConfig(data, join(dir, label), { train: train8, memory });
      const r = await train({ config, plugins: [...plugins(), microBatchProbe(rows)], resume: false, progress: silentProgress, log: (l) => { logs.push(l); quiet(l); } });
      runs[label] = { trained: r.trained, rows, logs, dir: config.output };
    }
    const { budget: split, unsplit } = runs as Record<string, (typeof runs)[string]>;
    expect(split!.logs).toContain(`memory.budget ${budget}B: micro-batch 4 x 2 accumulation steps, checkpointing off (predicted peak ${(half.totalBytes / MB).toFixed(0)} MiB)`);
    expect(split!.rows).toEqual([4, 4, 4, 4]);
    expect(unsplit!.rows).toEqual([8, 8]);
    // The metrics carry the fitted plan's prediction, which is within the budget.
    const steps = readJsonl(join(split!.dir, 'metrics.jsonl')).filter((m) => m.loss !== undefined);
    expect(steps.map((m) => m.step)).toEqual([1, 2]);
    for (const m of steps) {
      expect(m.predicted_peak_mb).toBeCloseTo(half.totalBytes / MB, 6);
      expect(m.predicted_peak_mb! * MB).toBeLessThanOrEqual(budget);
    }
    expect(readJsonl(join(unsplit!.dir, 'metrics.jsonl')).find((m) => m.step === 1)!.predicted_peak_mb).toBeCloseTo(whole.totalBytes / MB, 6);
    expect([...split!.trained.keys()]).toEqual([...unsplit!.trained.keys()]);
    let worst = 0;
    for (const [name, w] of unsplit!.trained) worst = Math.max(worst, relDiff(split!.trained.get(name)!, w));
    expect(worst).toBeLessThan(1e-5);
  }, 30_000);

  test('a budget too small for anything is refused by train() and by plan, with the breakdown', async () => {
    const dir = tempDir('memory-refuse');
    const data = writeTinyData(dir);
    const config = tinyConfig(data, join(dir, 'run'), { memory: { budget: '10MiB' } });
    let error: unknown;
    try {
      await train({ config, plugins: [fullFinetune()], resume: false, progress: silentProgress, log: quiet });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BudgetError);
    const message = (error as BudgetError).message;
    expect(message).toContain('does not fit in memory.budget = 10 MiB');
    expect(message).toContain('total (predicted peak)'); // the breakdown table
    expect(message).toContain('weights (float32)');
    expect(message).toContain('smallest changes that would fit');
    expect((error as BudgetError).smallest.microBatchSize).toBe(1);
    expect((error as BudgetError).smallest.checkpointing).toBe(true);

    const configPath = join(dir, 'tiny.json');
    writeFileSync(configPath, JSON.stringify({
      model: STORIES, output: 'runs/tiny', data: { train: 'train.jsonl', maxLength: 32 }, train: { steps: 2, batchSize: 4 },
      memory: { budget: '10MiB' }, plugins: ['full'],
    }));
    const r = await run(['run', MAIN, 'plan', '--config', configPath], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('plan failed: the run does not fit in memory.budget = 10 MiB');
    expect(r.stderr).toContain('total (predicted peak)');
    expect(r.stderr).toContain('smallest changes that would fit');
  }, 30_000);

  test('plan --json prints a plan whose total is the sum of its items', async () => {
    const dir = tempDir('memory-plan-json');
    writeTinyData(dir);
    const configPath = join(dir, 'tiny.json');
    writeFileSync(configPath, JSON.stringify({
      model: STORIES, output: 'runs/tiny', data: { train: 'train.jsonl', maxLength: 64 }, train: { steps: 2, batchSize: 8, microBatchSize: 4 },
      plugins: [{ name: 'lora', options: { r: 8, targets: ['q_proj', 'v_proj'] } }],
    }));
    const r = await run(['run', MAIN, 'plan', '--config', configPath, '--json', '--no-data'], dir);
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout) as MemoryPlan;
    expect(plan.items.length).toBeGreaterThan(3);
    expect(plan.totalBytes).toBe(plan.items.reduce((s, i) => s + i.bytes, 0));
    expect(plan.totalBytes).toBeGreaterThan(0);
    expect(plan.dims).toEqual({ B: 4, T: 64 }); // without the data: every sequence at data.maxLength
    expect(plan.fromData).toBe(false);
    expect(plan.accumulationSteps).toBe(2);
    expect(plan.items.map((i) => i.component)).toContain('gradient accumulation buffers');

    // With the pass over the data (the default): the tiny records are a few tokens, padded to 16s, and the dataset
    // is an item of its own.
    const d = await run(['run', MAIN, 'plan', '--config', configPath, '--json'], dir);
    expect(d.code).toBe(0);
    const fromData = JSON.parse(d.stdout) as MemoryPlan;
    expect(fromData.fromData).toBe(true);
    expect(fromData.dims.B).toBe(4);
    expect(fromData.dims.T % 16).toBe(0); // padded as batches are
    expect(fromData.dims.T).toBeLessThan(64);
    expect(fromData.items.map((i) => i.component)).toContain('dataset (tokenised)');
    // Records of 1 and 2 padded classes: two training shapes, each a compiled session of its own.
    expect(fromData.items.find((i) => i.component === 'compiled sessions')!.note).toMatch(/x [12] batch shapes/);
    expect(fromData.totalBytes).toBe(fromData.items.reduce((s, i) => s + i.bytes, 0));
  }, 30_000);
});
