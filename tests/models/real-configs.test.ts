/**
 * The stored config.json files of real checkpoints (core/models/configs): each parses into the family it belongs
 * to, with the parameter count its publisher gives, and cutting layers keeps every layer's shapes. Cheap: no weights.
 */
import { describe, expect, test } from 'bun:test';
import { parameterCount, paramSpecs, parseConfig, realConfig, REAL_CONFIGS, type ModelConfig } from '../../core/index.ts';

const parsed = (name: (typeof REAL_CONFIGS)[number], layers?: number): ModelConfig => parseConfig(realConfig(name, { layers }), name);

describe('real configs', () => {
  test('Qwen3-0.6B: Qwen3 (per-head q/k norms), tied, 0.44B parameters outside the embedding', () => {
    const c = parsed('qwen3-0.6b');
    expect(c.architecture).toBe('Qwen3ForCausalLM');
    expect(c.family.name).toBe('qwen3');
    expect(c.family.qkNorm).toBe('head');
    expect([c.layers, c.hidden, c.heads, c.kvHeads, c.headDim, c.vocabSize]).toEqual([28, 1024, 16, 8, 128, 151936]);
    expect(c.tieWordEmbeddings).toBe(true);
    expect(c.family.layers.every((l) => l.slidingWindow === null && l.rope === 'global')).toBe(true);
    // The model card: 0.6B parameters, 0.44B of them outside the embedding.
    const embedding = c.vocabSize * c.hidden;
    expect(parameterCount(c)).toBe(596_049_920);
    expect(Math.round((parameterCount(c) - embedding) / 1e7) / 100).toBe(0.44);
  });

  test('Gemma-3-270M: Gemma 3 text, 5 sliding layers of 512 then a global one, tied by the config class default', () => {
    const c = parsed('gemma-3-270m');
    expect(c.architecture).toBe('Gemma3ForCausalLM');
    expect(c.family.name).toBe('gemma3');
    expect([c.layers, c.hidden, c.heads, c.kvHeads, c.headDim, c.vocabSize]).toEqual([18, 640, 4, 1, 256, 262144]);
    expect(c.family.layers.map((l) => l.slidingWindow)).toEqual(Array.from({ length: 18 }, (_, i) => ((i + 1) % 6 === 0 ? null : 512)));
    expect(c.family.layers.map((l) => l.rope)).toEqual(Array.from({ length: 18 }, (_, i) => ((i + 1) % 6 === 0 ? 'global' : 'local')));
    expect(c.family.localRopeTheta).toBe(10000);
    expect(c.family.attnScale).toBeCloseTo(1 / 16, 12);
    // The checkpoint's config.json has no tie_word_embeddings: Gemma3TextConfig ties, and the checkpoint has no lm_head.
    expect(c.tieWordEmbeddings).toBe(true);
    expect(paramSpecs(c).some((p) => p.name === 'lm_head.weight')).toBe(false);
    expect(parameterCount(c)).toBe(268_098_176); // "270M"
  });

  test('Phi-4-mini-instruct: Phi-3 with fused projections, 96 of 128 dims rotated by LongRoPE, 3.84B parameters', () => {
    const c = parsed('phi-4-mini-instruct');
    expect(c.architecture).toBe('Phi3ForCausalLM');
    expect(c.family.name).toBe('phi3');
    expect(c.family.fused).toBe(true);
    expect(c.family.rotaryDim).toBe(96);
    expect([c.layers, c.hidden, c.heads, c.kvHeads, c.headDim, c.vocabSize]).toEqual([32, 3072, 24, 8, 128, 200064]);
    const s = c.ropeScaling;
    if (s.type !== 'longrope') throw new Error(`expected longrope, got ${s.type}`);
    expect([s.shortFactor.length, s.longFactor.length, s.originalMaxPositions]).toEqual([48, 48, 4096]);
    // transformers' default: sqrt(1 + ln(131072 / 4096) / ln(4096)).
    expect(s.attentionFactor).toBeCloseTo(Math.sqrt(1 + Math.log(32) / Math.log(4096)), 12);
    expect(c.family.layers.every((l) => l.slidingWindow === 262144)).toBe(true);
    expect(c.tieWordEmbeddings).toBe(true);
    expect(parameterCount(c)).toBe(3_836_021_760);
  });

  test('Qwen3-30B-A3B: Qwen3-MoE, 128 experts of 768, top 8 renormalised, 30.5B parameters', () => {
    const c = parsed('qwen3-30b-a3b');
    expect(c.architecture).toBe('Qwen3MoeForCausalLM');
    expect(c.family.name).toBe('qwen3_moe');
    expect(c.family.moe).toEqual({ naming: 'qwen3_moe', experts: 128, topK: 8, intermediate: 768, renormalize: true, auxLossCoef: null });
    expect(c.family.layers.every((l) => l.moe)).toBe(true);
    expect([c.layers, c.hidden, c.heads, c.kvHeads, c.headDim, c.vocabSize]).toEqual([48, 2048, 32, 4, 128, 151936]);
    expect(c.tieWordEmbeddings).toBe(false);
    expect(parameterCount(c)).toBe(30_532_122_624);
  });

  test('cutting layers keeps every layer, its shapes and the vocabulary', () => {
    for (const name of REAL_CONFIGS) {
      const whole = parsed(name);
      const one = parsed(name, 1), two = parsed(name, 2);
      expect([one.layers, two.layers]).toEqual([1, 2]);
      expect(two.vocabSize).toBe(whole.vocabSize);
      const perLayer = parameterCount(two) - parameterCount(one);
      expect(parameterCount(one) + (whole.layers - 1) * perLayer).toBe(parameterCount(whole));
      expect(two.family.layers).toEqual(whole.family.layers.slice(0, 2));
      const shapes = (c: ModelConfig) => paramSpecs(c).filter((p) => p.name.startsWith('model.layers.1.')).map((p) => `${p.name} ${p.shape}`);
      expect(shapes(two)).toEqual(shapes(whole));
    }
  });

  test('unknown names and impossible cuts are refused with what is known', () => {
    expect(() => realConfig('llama-9000' as (typeof REAL_CONFIGS)[number])).toThrow(/unknown model 'llama-9000'; known: qwen3-0.6b/);
    expect(() => realConfig('qwen3-0.6b', { layers: 29 })).toThrow(/layers must be an integer from 1 to 28, got 29/);
  });
});
