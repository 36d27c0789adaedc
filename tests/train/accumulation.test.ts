/**
 * Gradient accumulation: one SGD step on a batch of 8 computed in one pass, in micro-batches of 2, and in uneven
 * micro-batches of 3 (3 + 3 + 2 rows) lands on the same weights.
 *
 * Exact equality is not expected, only float32 agreement: the micro-batch gradients are summed in a different order
 * (per micro-batch, then weighted by loss tokens and divided once) than the single pass's reductions over all rows,
 * and each micro-batch is padded to its own longest example, so the matmuls and reductions onnxruntime runs have
 * different sizes and blocking. Padded positions carry no loss and sit after the real tokens (causal attention never
 * sees them), so the mathematics are identical; only rounding differs. Weighting micro-batches equally instead of by
 * their loss tokens (the classic accumulation bug) is off by whole percents here, far outside the tolerance.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import type { HostTensor, Plugin } from '../../core/index.ts';
import { loadModel } from '../../core/models/load.ts';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune } from '../../plugins/index.ts';
import { quiet, removeTempDirs, silentProgress, STORIES, storiesMissing, tempDir, tinyConfig, writeTinyData } from './helpers.ts';

afterAll(removeTempDirs);

const missing = storiesMissing('gradient accumulation tests');

/** Records the batch size of every forward/backward pass (step:feeds is called once per micro-batch). */
function microBatchProbe(rows: number[]): Plugin {
  return { name: 'test:micro-batches', 'step:feeds': (ctx) => void rows.push(ctx.dims.B!) };
}

async function oneStep(dir: string, data: string, microBatchSize: number) {
  const rows: number[] = [];
  const config = tinyConfig(data, join(dir, `mb${microBatchSize}`), {
    // lr 0.5 makes the update large against float32 rounding of the weights, so the check on updates means something.
    train: { steps: 1, batchSize: 8, microBatchSize, optimizer: 'sgd', momentum: 0, lr: 0.5, schedule: 'constant', maxGradNorm: null, padMultiple: 1 },
  });
  const r = await train({ config, plugins: [fullFinetune(), microBatchProbe(rows)], resume: false, progress: silentProgress, log: quiet });
  return { trained: r.trained, rows };
}

/** max |a - b| / max |b| over one tensor. */
function relDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

const minus = (a: HostTensor, b: HostTensor) => (a.data as Float32Array).map((v, i) => v - (b.data as Float32Array)[i]!);

describe.skipIf(missing)('gradient accumulation', () => {
  test('micro-batches of 2 and of 3 (uneven) give the batch-of-8 update', async () => {
    const dir = tempDir('accumulation');
    const data = writeTinyData(dir);
    const { weights: initial } = await loadModel(STORIES);
    const full = await oneStep(dir, data, 8);
    expect(full.rows).toEqual([8]);

    for (const [size, rows] of [[2, [2, 2, 2, 2]], [3, [3, 3, 2]]] as const) {
      const micro = await oneStep(dir, data, size);
      expect(micro.rows).toEqual([...rows]);
      expect([...micro.trained.keys()]).toEqual([...full.trained.keys()]);
      let worstWeights = 0, worstUpdate = 0;
      for (const [name, w] of full.trained) {
        const m = micro.trained.get(name)!;
        worstWeights = Math.max(worstWeights, relDiff(m.data as Float32Array, w.data as Float32Array));
        // The update itself (w_after - w_before) must agree too, not just the weights it is small against.
        const fullUpdate = minus(w, initial.get(name)!), microUpdate = minus(m, initial.get(name)!);
        expect(fullUpdate.some((v) => v !== 0)).toBe(true); // it moved
        worstUpdate = Math.max(worstUpdate, relDiff(microUpdate, fullUpdate));
      }
      if (process.env.TUNEFORGE_TEST_LOG) console.log(`micro-batch ${size}: weights ${worstWeights.toExponential(2)}, updates ${worstUpdate.toExponential(2)}`);
      expect(worstWeights).toBeLessThan(1e-5);
      expect(worstUpdate).toBeLessThan(1e-3);
    }
  }, 30_000);
});
