/**
 * memory.arena: the run's sessions in this process share one onnxruntime arena. The numbers are the default run's
 * (the same kernels, other addresses); with train.optimizerOn 'device' the update is fused into the step, within
 * float32 rounding of the host update, and resumes bit-exactly.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { train } from './trainer.ts';
import { fullFinetune } from '../../plugins/index.ts';
import { ortFfiUnavailable } from '../../runners/ort-ffi.ts';
import { ortNodeRunner } from '../../runners/ort-node.ts';
import { maxRelDiff } from '../../testing/logits.ts';
import {
  bitDifferences, readJsonl, removeTempDirs, silentProgress, storiesMissing, tempDir, tinyConfig, writeTinyData,
} from '../../tests/train/helpers.ts';

afterAll(removeTempDirs);

const noCApi = await ortFfiUnavailable();
if (noCApi) console.warn(`skipping the memory.arena runs: ${noCApi}`);
const missing = storiesMissing('the memory.arena runs') || noCApi !== undefined;

describe.skipIf(missing)('memory.arena on stories260k (full fine-tuning)', () => {
  test("the host update gives the default run's bits; 'device' fuses the update (within 1e-5) and resumes bit-exactly", async () => {
    const dir = tempDir('arena');
    const data = writeTinyData(dir);
    const config = (name: string, optimizerOn: 'host' | 'device', arena: boolean) => tinyConfig(data, join(dir, name), {
      train: { steps: 5, optimizerOn, weightDecay: 0.1, maxGradNorm: 0.5 }, checkpoint: { every: 2, keep: 2 }, memory: { arena },
    });
    const lines: string[] = [];
    const run = (cfg: ReturnType<typeof config>, stopAfterSteps?: number) => train({
      config: cfg, plugins: [fullFinetune()], progress: silentProgress, log: (l) => lines.push(l), ...(stopAfterSteps ? { stopAfterSteps } : {}),
    });
    const losses = (cfg: ReturnType<typeof config>) => readJsonl(join(cfg.output, 'metrics.jsonl')).filter((r) => r.step! > 0 && r.loss !== undefined).map((r) => r.loss!);

    const plainCfg = config('plain', 'host', false), arenaCfg = config('arena', 'host', true), fusedCfg = config('fused', 'device', true);
    const plain = await run(plainCfg), arena = await run(arenaCfg);
    expect(lines.some((l) => l.startsWith('memory.arena: one onnxruntime memory arena'))).toBe(true);
    expect(losses(arenaCfg)).toEqual(losses(plainCfg));
    expect(bitDifferences(arena.trained, plain.trained)).toEqual([]);

    lines.length = 0;
    const fused = await run(fusedCfg);
    expect(lines.some((l) => l.includes("train.optimizerOn 'device' on onnxruntime-node (shared arena): the parameters and moments stay there"))).toBe(true);
    losses(fusedCfg).forEach((l, k) => expect(Math.abs(l - losses(plainCfg)[k]!)).toBeLessThan(1e-5));
    for (const [n, t] of plain.trained) expect(maxRelDiff(fused.trained.get(n)!.data as Float32Array, t.data as Float32Array)).toBeLessThan(1e-5);

    // Stopped after step 3 (checkpoint of step 2, state read back from the store) and resumed: the same bits.
    const resumedCfg = config('resumed', 'device', true);
    expect((await run(resumedCfg, 3)).step).toBe(3);
    const resumed = await run(resumedCfg);
    expect(resumed.finished).toBe(true);
    expect(bitDifferences(resumed.trained, fused.trained)).toEqual([]);
  }, 120_000);

  test('not used with a runner of its own (said in the log); refused where the C API is not used', async () => {
    const dir = tempDir('arena-runner');
    const cfg = tinyConfig(writeTinyData(dir), join(dir, 'run'), { train: { steps: 1 }, memory: { arena: true } });
    const lines: string[] = [];
    await train({ config: cfg, plugins: [fullFinetune()], runner: ortNodeRunner(), progress: silentProgress, log: (l) => lines.push(l) });
    expect(lines).toContain('memory.arena: not used, the steps run on onnxruntime-node (the arena is for sessions in this process)');
    const step = { model: { bytes: new Uint8Array() }, inputs: [], outputs: [], origins: new Map() };
    await expect(ortNodeRunner({ sharedArena: true, binding: 'node' }).load(step)).rejects.toThrow(/sharedArena needs onnxruntime's C API on the CPU provider/);
  }, 60_000);
});
