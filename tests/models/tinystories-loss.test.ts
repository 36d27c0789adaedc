/**
 * stories260k's mean cross-entropy on the 5 TinyStoriesV2 stories in ../shared/data/tinystories: an independent
 * implementation measured 1.266 nats/token over 1,804 predicted tokens (../shared/models/stories260k/SOURCE.md,
 * "Sanity checks"). Each story (split on `<|endoftext|>`, surrounding whitespace stripped) is encoded as `<s>` + text;
 * every token but the first is a target, so 5 stories of 1,809 tokens in all give 1,804 targets.
 */
import { describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { compile, nn, trace, type HostTensor } from '../../core/index.ts';
import { buildCausalLM } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import { loadTokenizer } from '../../core/tokenizer/index.ts';

const SHARED = join(import.meta.dir, '../../../shared');
const MODEL = join(SHARED, 'models/stories260k');
const TEXT = join(SHARED, 'data/tinystories/tinystories_v2_sample.txt');
const missing = !existsSync(MODEL) || !existsSync(TEXT);
if (missing) console.warn(`skipping TinyStories loss test: ${MODEL} or ${TEXT} is absent`);

const REFERENCE_LOSS = 1.266;
const REFERENCE_TOKENS = 1804;

describe.skipIf(missing)('stories260k on TinyStoriesV2 text', () => {
  test('mean cross-entropy matches the reference figure', async () => {
    const { config, weights } = await loadModel(MODEL);
    const tok = await loadTokenizer(MODEL);
    const stories = (await Bun.file(TEXT).text()).split('<|endoftext|>').map((s) => s.trim()).filter((s) => s !== '');
    expect(stories.length).toBe(5);
    const encoded = stories.map((s) => tok.encode(s)); // the post-processor prepends <s>
    for (const ids of encoded) expect(ids[0]).toBe(tok.bosId!);

    // One padded batch; labels are pre-shifted (labels[t] = ids[t + 1]) and -100 on the last position and on pads.
    const B = encoded.length;
    const T = Math.max(...encoded.map((ids) => ids.length));
    expect(T).toBeLessThanOrEqual(config.maxPositions);
    const inputIds = new BigInt64Array(B * T);
    const labels = new BigInt64Array(B * T).fill(-100n);
    let targets = 0;
    encoded.forEach((ids, b) => {
      ids.forEach((id, t) => {
        inputIds[b * T + t] = BigInt(id);
        if (t + 1 < ids.length) {
          labels[b * T + t] = BigInt(ids[t + 1]!);
          targets++;
        }
      });
    });
    expect(targets).toBe(REFERENCE_TOKENS);

    const graph = trace((g) => {
      const m = buildCausalLM(g, config, { batch: B, seq: T });
      const y = g.input('labels', 'int64', [B, T]);
      return { nll: nn.crossEntropy(m.logits, y, { reduction: 'sum' }) };
    });
    const exe = await compile(graph, { resident: weights });
    const feeds: Record<string, HostTensor> = {
      input_ids: { dtype: 'int64', shape: [B, T], data: inputIds },
      labels: { dtype: 'int64', shape: [B, T], data: labels },
    };
    const out = await exe.run(feeds);
    await exe.release();
    const loss = Number(out.nll!.data[0]) / targets;
    console.log(`stories260k on tinystories_v2_sample.txt: ${loss.toFixed(4)} nats/token over ${targets} tokens (reference ${REFERENCE_LOSS})`);
    expect(Number.isFinite(loss)).toBe(true);
    expect(Math.abs(loss - REFERENCE_LOSS)).toBeLessThan(0.01);
  });
});
