/**
 * Gradients written into arrays kept between steps (core/train/grad-buffers.ts): the same bits as new arrays each
 * step, with micro-batches, clipping and LISA's switches; the step:after hook sees the same array every step.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import type { Plugin } from '../../core/plugin/index.ts';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune, lisa } from '../../plugins/index.ts';
import { ortNodeRunner } from '../../runners/ort-node.ts';
import type { Runner } from '../../runners/types.ts';
import { GradBuffers } from '../../core/train/grad-buffers.ts';
import { bitDifferences, quiet, removeTempDirs, silentProgress, storiesMissing, tempDir, tinyConfig, writeTinyData } from './helpers.ts';

afterAll(removeTempDirs);
const missing = storiesMissing('kept gradient arrays');

/** onnxruntime-node without `writesInto`: the trainer then lets each step return new gradient arrays. */
const newArrays = (): Runner => {
  const { writesInto: _, ...rest } = ortNodeRunner();
  return rest;
};

/** Records, at each step:after, the gradient array of `name` the hook is given. */
function watch(name: string): { plugin: Plugin; seen: Float32Array[] } {
  const seen: Float32Array[] = [];
  return { seen, plugin: { name: 'watch-grads', 'step:after': (_ctx, r) => { const g = r.grads?.get(name); if (g) seen.push(g); } } };
}

async function run(runner: Runner | undefined, train_: Record<string, unknown>, plugins: () => Plugin[], watched: string) {
  const dir = tempDir('grad-buffers');
  const config = tinyConfig(writeTinyData(dir), `${dir}/run`, { train: { steps: 4, maxGradNorm: 0.5, ...train_ } });
  const w = watch(watched);
  const result = await train({ config, plugins: [...plugins(), w.plugin], progress: silentProgress, log: quiet, ...(runner ? { runner } : {}) });
  return { trained: result.trained, seen: w.seen };
}

describe.skipIf(missing)('gradients into kept arrays', () => {
  for (const [label, train_, plugins] of [
    ['full fine-tuning, clipping', {}, () => [fullFinetune()]],
    ['full fine-tuning, two micro-batches', { microBatchSize: 2 }, () => [fullFinetune()]],
    ['LISA (one layer, switching every 2 steps)', {}, () => [lisa({ activeLayers: 1, interval: 2 })]],
  ] as const) {
    test(`${label}: the same weights as new arrays every step`, async () => {
      const watched = 'model.norm.weight';
      const kept = await run(undefined, train_, plugins, watched);
      const fresh = await run(newArrays(), train_, plugins, watched);
      expect(kept.trained.size).toBeGreaterThan(0);
      expect(bitDifferences(kept.trained, fresh.trained)).toEqual([]);
      if (!('microBatchSize' in train_) && label.startsWith('full')) {
        // One micro-batch: the hook is handed the kept array itself, step after step; new arrays otherwise.
        expect(kept.seen.length).toBe(4);
        expect(kept.seen.every((g) => g === kept.seen[0])).toBe(true);
        expect(fresh.seen.every((g, i) => i === 0 || g !== fresh.seen[i - 1])).toBe(true);
      }
    }, 60_000);
  }
});

test('GradBuffers: made on first use, kept while trained, dropped when not', () => {
  const b = new GradBuffers();
  const a = b.get('a', 3);
  expect(b.get('a', 3)).toBe(a);
  expect(b.owns('a', a)).toBe(true);
  expect(b.owns('a', new Float32Array(3))).toBe(false);
  b.retain(['c']);
  expect(b.owns('a', a)).toBe(false);
  expect(b.get('a', 3)).not.toBe(a);
  expect(b.get('a', 4).length).toBe(4); // a changed length gets a new array
});
