/**
 * An epoch's short last batch is padded with loss-free rows to the full batches' shape (core/train/batches.ts), so
 * the step reuses their session instead of compiling a second one beside it. The padding must change nothing the
 * optimizer sees: the same loss and the same gradients as the short batch alone.
 */
import { describe, expect, test } from 'bun:test';
import { compile, trace, valueAndGrad, type HostTensor } from '../../core/index.ts';
import { compactExample, type Batch } from '../../core/data/index.ts';
import { buildCausalLM, causalLMLoss } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import { microBatches } from '../../core/train/batches.ts';
import { STORIES, storiesMissing } from './helpers.ts';

const examples = [
  [1, 40, 41, 42, 43],
  [1, 50, 51],
  [1, 60, 61, 62, 63, 64, 65],
].map((ids) => compactExample({ inputIds: ids, labels: ids.map((id, t) => (t === 0 ? -100 : id)) }));
const shortBatch = { indices: [0, 1, 2] } as unknown as Batch; // microBatches reads the indices only

describe('short batches', () => {
  test('padded to the rows a full batch has at that place, the padding rows without loss', () => {
    const [plain] = microBatches(examples, shortBatch, 8, 0, 1);
    const padded = microBatches(examples, shortBatch, 4, 0, 1, 8); // micro-batches of 4 in a batch of 8: 4 then 4
    expect(plain!.dims).toEqual({ B: 3, T: 7 });
    expect(padded.length).toBe(1);
    expect(padded[0]!.dims).toEqual({ B: 4, T: 7 });
    expect(padded[0]!.lossTokens).toBe(plain!.lossTokens);
    expect(padded[0]!.tokens).toBe(plain!.tokens);
    const labels = padded[0]!.feeds.labels.data as BigInt64Array;
    expect([...labels.slice(3 * 7)].every((v) => v === -100n)).toBe(true);
    expect([...labels.slice(0, 3 * 7)]).toEqual([...(plain!.feeds.labels.data as BigInt64Array)]);
    // The last micro-batch of a batch of 6 in micro-batches of 4 has 2 rows in a full batch: a short one gets 2.
    const tail = microBatches(examples, { indices: [0, 1, 2, 0, 1] } as unknown as Batch, 4, 0, 1, 6);
    expect(tail.map((m) => m.dims.B)).toEqual([4, 2]);
  });

  test.skipIf(storiesMissing('the short-batch loss check'))('stories260k: the padded batch has the loss and gradients of the short one', async () => {
    const { config, weights } = await loadModel(STORIES);
    const graph = valueAndGrad(
      trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, config, { batch: 'B', seq: 'T' })) })),
      { of: 'loss', wrt: ['model.layers.0.self_attn.q_proj.weight', 'model.embed_tokens.weight'] },
    );
    const run = async (m: ReturnType<typeof microBatches>[number]): Promise<Record<string, HostTensor>> => {
      const exe = await compile(graph, { dims: m.dims });
      try {
        return await exe.run({ ...Object.fromEntries(weights), ...m.feeds });
      } finally {
        await exe.release();
      }
    };
    const a = await run(microBatches(examples, shortBatch, 8, 0, 1)[0]!);
    const b = await run(microBatches(examples, shortBatch, 8, 0, 1, 8)[0]!);
    expect(Math.abs((b.loss!.data as Float32Array)[0]! - (a.loss!.data as Float32Array)[0]!)).toBeLessThan(1e-6);
    for (const k of Object.keys(a).filter((k) => k.startsWith('grad:'))) {
      const x = a[k]!.data as Float32Array, y = b[k]!.data as Float32Array;
      let diff = 0, scale = 0;
      for (let i = 0; i < x.length; i++) (diff = Math.max(diff, Math.abs(x[i]! - y[i]!))), (scale = Math.max(scale, Math.abs(x[i]!)));
      expect(diff).toBeLessThanOrEqual(1e-5 * scale);
    }
  });
});
