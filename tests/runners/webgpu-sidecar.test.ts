/**
 * Training through a sidecar on its WebGPU provider, as it runs on a GPU machine: here on whatever adapter Dawn finds
 * (Mesa's lavapipe in CI, installed by .ci/lavapipe.sh). The same runs as in this process on the CPU agree within
 * float32 rounding, and a run resumed on the WebGPU sidecar ends with the bits of an uninterrupted one there. That
 * holds because the embedding gradient is summed in a fixed order (train.deterministic, the default): with
 * onnxruntime's WebGPU ScatterND two identical 5-step runs differed by up to 8e-8 (docs/runners.md).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune, lora } from '../../plugins/index.ts';
import { maxRelError } from '../../runners/conformance.ts';
import { sidecar } from '../../runners/sidecar.ts';
import { startSidecar, type RunningSidecar } from '../../runners/sidecar-server.ts';
import { bitDifferences, quiet, readJsonl, removeTempDirs, silentProgress, storiesMissing, tempDir, tinyConfig, writeTinyData } from '../train/helpers.ts';

const TOKEN = 'test-token-0123456789abcdef';
let server: RunningSidecar | undefined;
let why: string | undefined;
if (!storiesMissing('the WebGPU sidecar training tests')) {
  server = await startSidecar({ hostname: '127.0.0.1', port: 0, provider: 'webgpu', token: TOKEN }).catch((e: Error) => {
    why = e.message.split('\n')[0];
    return undefined;
  });
  if (why) console.warn(`skipping the WebGPU sidecar training tests: ${why} (Debian: bash .ci/lavapipe.sh installs a software Vulkan driver)`);
}
afterAll(async () => {
  await server?.stop();
  removeTempDirs();
});

/**
 * AdamW divides each element's step by the root of its own squared-gradient average, so where a gradient is near 0
 * a float32 rounding of it becomes a visible share of a step (up to lr): trained tensors agree to ~1e-4 of their
 * largest element after a few steps, while the losses agree to ~1e-7.
 */
const WEIGHTS_TOL = 1e-3, LOSS_TOL = 1e-5;

/** The largest relative difference between two runs' trained tensors, and between their losses step by step. */
function compareRuns(a: Awaited<ReturnType<typeof train>>, b: Awaited<ReturnType<typeof train>>, aDir: string, bDir: string) {
  let weights = 0;
  for (const [name, t] of b.trained) weights = Math.max(weights, maxRelError(a.trained.get(name)!, t));
  const losses = (dir: string) => readJsonl(join(dir, 'metrics.jsonl')).filter((r) => r.step_s !== undefined).map((r) => r.loss!);
  const la = losses(aDir), lb = losses(bDir);
  expect(la.length).toBe(lb.length);
  const loss = Math.max(...la.map((x, i) => Math.abs(x - lb[i]!) / Math.abs(lb[i]!)));
  return { weights, loss };
}

describe.skipIf(!server)('training through a WebGPU sidecar', () => {
  test("full fine-tuning with the state on the sidecar (AdamW, clipping) agrees with the CPU in this process, and resumes to the same bits", async () => {
    const dir = tempDir('webgpu-sidecar-full');
    const data = writeTinyData(dir);
    const overrides = { train: { steps: 5, optimizerOn: 'device' as const, maxGradNorm: 0.5, warmupSteps: 2 }, checkpoint: { every: 2, keep: 1 } };
    const local = await train({ config: tinyConfig(data, join(dir, 'local'), overrides), plugins: [fullFinetune()], progress: silentProgress, log: quiet });
    const runner = sidecar(server!.url, { token: TOKEN });
    const lines: string[] = [];
    const remote = await train({ config: tinyConfig(data, join(dir, 'remote'), overrides), plugins: [fullFinetune()], progress: silentProgress, log: (l) => lines.push(l), runner });
    expect(lines.some((l) => l.includes('provider webgpu') || l.includes('webgpu'))).toBe(true);
    const { weights, loss } = compareRuns(remote, local, join(dir, 'remote'), join(dir, 'local'));
    console.log(`full fine-tuning, 5 steps on the WebGPU sidecar vs the CPU here: weights ${weights.toExponential(2)}, losses ${loss.toExponential(2)} (relative)`);
    expect(weights).toBeLessThan(WEIGHTS_TOL);
    expect(loss).toBeLessThan(LOSS_TOL);
    // Stopped after step 3, resumed from the checkpoint of step 2 read back from the sidecar: the uninterrupted run's bits.
    const resumedConfig = tinyConfig(data, join(dir, 'resumed'), overrides);
    await train({ config: resumedConfig, plugins: [fullFinetune()], progress: silentProgress, log: quiet, runner, stopAfterSteps: 3 });
    const resumed = await train({ config: resumedConfig, plugins: [fullFinetune()], progress: silentProgress, log: quiet, runner });
    expect(bitDifferences(resumed.trained, remote.trained)).toEqual([]);
    expect(await runner.info()).toMatchObject({ provider: 'webgpu', sessions: 0, heldBytes: 0 });
  }, 180_000);

  test('full fine-tuning repeats to the bit there: two runs, the same bits', async () => {
    const dir = tempDir('webgpu-sidecar-deterministic');
    const data = writeTinyData(dir);
    const overrides = { train: { steps: 5, optimizerOn: 'device' as const, maxGradNorm: 0.5, warmupSteps: 2 } };
    const runner = sidecar(server!.url, { token: TOKEN });
    const run = (name: string) => train({ config: tinyConfig(data, join(dir, name), overrides), plugins: [fullFinetune()], progress: silentProgress, log: quiet, runner });
    const [a, b] = [await run('a'), await run('b')];
    expect(bitDifferences(a.trained, b.trained)).toEqual([]);
  }, 180_000);

  test('LoRA agrees with the CPU in this process; with the state on the sidecar it resumes to the same bits', async () => {
    const dir = tempDir('webgpu-sidecar-lora');
    const data = writeTinyData(dir);
    const plugins = () => [lora({ r: 4, alpha: 8, targets: ['q_proj', 'v_proj'] })];
    const overrides = { train: { steps: 4 } };
    const local = await train({ config: tinyConfig(data, join(dir, 'local'), overrides), plugins: plugins(), progress: silentProgress, log: quiet });
    const remote = await train({ config: tinyConfig(data, join(dir, 'remote'), overrides), plugins: plugins(), progress: silentProgress, log: quiet, runner: sidecar(server!.url, { token: TOKEN }) });
    const { weights, loss } = compareRuns(remote, local, join(dir, 'remote'), join(dir, 'local'));
    console.log(`LoRA, 4 steps on the WebGPU sidecar vs the CPU here: adapters ${weights.toExponential(2)}, losses ${loss.toExponential(2)} (relative)`);
    expect(weights).toBeLessThan(WEIGHTS_TOL);
    expect(loss).toBeLessThan(LOSS_TOL);
    const device = { train: { steps: 5, optimizerOn: 'device' as const }, checkpoint: { every: 2, keep: 1 } };
    const runner = sidecar(server!.url, { token: TOKEN });
    const whole = await train({ config: tinyConfig(data, join(dir, 'whole'), device), plugins: plugins(), progress: silentProgress, log: quiet, runner });
    const resumedConfig = tinyConfig(data, join(dir, 'resumed'), device);
    await train({ config: resumedConfig, plugins: plugins(), progress: silentProgress, log: quiet, runner, stopAfterSteps: 3 });
    const resumed = await train({ config: resumedConfig, plugins: plugins(), progress: silentProgress, log: quiet, runner });
    expect(bitDifferences(resumed.trained, whole.trained)).toEqual([]);
  }, 180_000);
});
