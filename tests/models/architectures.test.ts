/**
 * The Llama family beyond stories260k, on random weights (no ../shared needed, except for the checkpoint-mismatch
 * test): SmolLM2-135M's real shape trains one step; Mistral (sliding window) and Qwen2 (q/k/v biases) build and run;
 * bias options; unsupported configs are refused; llama3 RoPE scaling against Hugging Face's formula; checkpoints that
 * do not match config.json are refused with every problem listed.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compile, gradName, parameterCount, paramSpecs, parseConfig, randomWeights, readAll, SMOLLM2_135M, trace, valueAndGrad,
  writeSafetensors, type HostTensor, type ModelConfig, type RawConfig,
} from '../../core/index.ts';
import { buildCausalLM, causalLMLoss } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import { scaledInvFreq } from '../../core/models/rope-scaling.ts';

const MODEL = join(import.meta.dir, '../../../shared/models/stories260k');
const missingModel = !existsSync(join(MODEL, 'model.safetensors'));
if (missingModel) console.warn(`skipping checkpoint-mismatch tests: ${MODEL} is absent`);

const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

const ids = (values: readonly number[], shape: number[]): HostTensor => ({ dtype: 'int64', shape, data: BigInt64Array.from(values, BigInt) });

/** A small random-sized config of any architecture, overridable field by field. */
function small(architecture: string, extra: Partial<RawConfig> = {}): RawConfig {
  return {
    architectures: [architecture],
    vocab_size: 64,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 128,
    ...extra,
  };
}

/** Logits [1, T, V] of a full causal forward pass. */
async function forward(c: ModelConfig, weights: Map<string, HostTensor>, tokens: number[]): Promise<Float32Array> {
  const graph = trace((g) => ({ logits: buildCausalLM(g, c, { batch: 1, seq: tokens.length }).logits }));
  const exe = await compile(graph, { resident: weights });
  const out = await exe.run({ input_ids: ids(tokens, [1, tokens.length]) });
  await exe.release();
  return out.logits!.data as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const row = (logits: Float32Array, t: number, V: number) => logits.subarray(t * V, (t + 1) * V);
const names = (c: ModelConfig) => paramSpecs(c).map((p) => p.name);

describe('SmolLM2-135M shape, random weights', () => {
  test('parameter count, one forward+backward step with every weight trainable', async () => {
    const c = parseConfig(SMOLLM2_135M);
    const count = parameterCount(c);
    console.log(`SmolLM2-135M parameters: ${(count / 1e6).toFixed(1)}M (${count.toLocaleString('en-US')})`);
    expect(count).toBe(134_515_008);
    expect((count / 1e6).toFixed(1)).toBe('134.5');

    const weights = randomWeights(c, 1);
    const T = 16;
    const graph = trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, c, { batch: 1, seq: T })) }));
    const wrt = [...weights.keys()];
    expect(wrt.length).toBe(paramSpecs(c).length);
    const exe = await compile(valueAndGrad(graph, { of: 'loss', wrt }));
    const tokens = Array.from({ length: T + 1 }, (_, i) => (i * 7919 + 13) % c.vocabSize);
    const out = await exe.run({
      ...Object.fromEntries(weights),
      input_ids: ids(tokens.slice(0, T), [1, T]),
      labels: ids(tokens.slice(1), [1, T]),
    });
    await exe.release();
    const loss = Number(out.loss!.data[0]);
    console.log(`SmolLM2-135M random init: loss ${loss.toFixed(3)} (ln V = ${Math.log(c.vocabSize).toFixed(3)})`);
    expect(Number.isFinite(loss)).toBe(true);
    expect(Math.abs(loss - Math.log(c.vocabSize))).toBeLessThan(1);
    let nonZero = 0;
    for (const name of wrt) {
      const gr = out[gradName(name)]!;
      expect(gr.shape).toEqual(weights.get(name)!.shape);
      const data = gr.data as Float32Array;
      let finite = true, any = false;
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i]!)) finite = false;
        if (data[i] !== 0) any = true;
      }
      expect(finite).toBe(true);
      if (any) nonZero++;
    }
    expect(nonZero).toBe(wrt.length);
  }, 60_000);
});

describe('Mistral and Qwen2', () => {
  test('Qwen2: q/k/v biases, no o_proj bias; builds and runs', async () => {
    const c = parseConfig(small('Qwen2ForCausalLM', { model_type: 'qwen2' }));
    expect(c.architecture).toBe('Qwen2ForCausalLM');
    expect(c.slidingWindow).toBeNull();
    const n = names(c);
    for (const m of ['q_proj', 'k_proj', 'v_proj']) expect(n).toContain(`model.layers.1.self_attn.${m}.bias`);
    expect(n).not.toContain('model.layers.0.self_attn.o_proj.bias');
    expect(n.filter((x) => x.endsWith('.bias')).length).toBe(3 * c.layers);
    const kBias = paramSpecs(c).find((p) => p.name === 'model.layers.0.self_attn.k_proj.bias')!;
    expect(kBias.shape).toEqual([c.kvHeads * c.headDim]);

    const weights = randomWeights(c, 2, 0.3);
    const tokens = [1, 5, 9, 3, 60, 2, 7];
    const base = await forward(c, weights, tokens);
    expect(base.length).toBe(tokens.length * c.vocabSize);
    expect(base.every(Number.isFinite)).toBe(true);
    // The biases are used: a non-zero q bias changes the output.
    const biased = new Map(weights);
    const qb = weights.get('model.layers.0.self_attn.q_proj.bias')!;
    biased.set('model.layers.0.self_attn.q_proj.bias', { ...qb, data: (qb.data as Float32Array).map(() => 0.5) });
    expect(maxAbsDiff(await forward(c, biased, tokens), base)).toBeGreaterThan(1e-4);
  });

  test('Mistral: sliding window hides keys at distance >= window; null window sees everything', async () => {
    const windowed = parseConfig(small('MistralForCausalLM', { model_type: 'mistral', sliding_window: 3 }));
    const full = parseConfig(small('MistralForCausalLM', { model_type: 'mistral', sliding_window: null }));
    expect(windowed.slidingWindow).toBe(3);
    expect(full.slidingWindow).toBeNull();
    expect(names(windowed).some((x) => x.endsWith('.bias'))).toBe(false);
    const weights = randomWeights(windowed, 3, 0.3); // same shapes for both
    const V = windowed.vocabSize;
    const a = [10, 20, 30, 40, 50, 60, 11, 12];
    const b = [33, ...a.slice(1)]; // only token 0 differs

    // Window 3: position t sees keys t-2..t. With 2 layers, position 5 depends on tokens 1..5 only, position 4 on 0..4.
    const [wa, wb] = [await forward(windowed, weights, a), await forward(windowed, weights, b)];
    expect(wa.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(row(wa, 5, V), row(wb, 5, V))).toBeLessThan(1e-6);
    expect(maxAbsDiff(row(wa, 6, V), row(wb, 6, V))).toBeLessThan(1e-6);
    expect(maxAbsDiff(row(wa, 4, V), row(wb, 4, V))).toBeGreaterThan(1e-4);

    const [fa, fb] = [await forward(full, weights, a), await forward(full, weights, b)];
    expect(maxAbsDiff(row(fa, 5, V), row(fb, 5, V))).toBeGreaterThan(1e-4);
    // Positions 0..2 see the same keys either way, so both models agree there.
    expect(maxAbsDiff(fa.subarray(0, 3 * V), wa.subarray(0, 3 * V))).toBeLessThan(1e-5);
  });

  test('Mistral: the cached one-token decode graph applies the same sliding window as the full pass', async () => {
    const c = parseConfig(small('MistralForCausalLM', { sliding_window: 3 }));
    const weights = randomWeights(c, 4, 0.3);
    const tokens = [10, 20, 30, 40, 50, 60, 11];
    const maxLen = 8, V = c.vocabSize;
    const reference = await forward(c, weights, tokens);
    const graph = trace((g) => {
      const m = buildCausalLM(g, c, { batch: 1, seq: 1, cache: { maxLen } });
      return { logits: m.logits, ...m.cacheOut };
    });
    const exe = await compile(graph, { resident: weights });
    const shape = [1, c.kvHeads, maxLen, c.headDim];
    const cache: Record<string, HostTensor> = {};
    for (let i = 0; i < c.layers; i++) {
      for (const kv of ['k', 'v']) cache[`past.${kv}.${i}`] = { dtype: 'float32', shape, data: new Float32Array(shape.reduce((x, y) => x * y)) };
    }
    let worst = 0;
    for (let t = 0; t < tokens.length; t++) {
      const r = await exe.run({ input_ids: ids([tokens[t]!], [1, 1]), position: ids([t], [1]), ...cache });
      for (const k of Object.keys(cache)) cache[k] = r[k.replace('past.', 'present.')]!;
      worst = Math.max(worst, maxAbsDiff(r.logits!.data as Float32Array, row(reference, t, V)));
    }
    await exe.release();
    expect(worst).toBeLessThan(1e-4);
  });
});

describe('bias options', () => {
  test('attention_bias adds q/k/v/o biases, mlp_bias adds gate/up/down biases', async () => {
    const none = parseConfig(small('LlamaForCausalLM'));
    expect(names(none).some((x) => x.endsWith('.bias'))).toBe(false);

    const attn = parseConfig(small('LlamaForCausalLM', { attention_bias: true }));
    const an = names(attn);
    for (const m of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) expect(an).toContain(`model.layers.0.self_attn.${m}.bias`);
    expect(an.some((x) => x.includes('mlp') && x.endsWith('.bias'))).toBe(false);
    expect(an.filter((x) => x.endsWith('.bias')).length).toBe(4 * attn.layers);

    const mlp = parseConfig(small('LlamaForCausalLM', { mlp_bias: true }));
    const mn = names(mlp);
    for (const m of ['gate_proj', 'up_proj', 'down_proj']) expect(mn).toContain(`model.layers.1.mlp.${m}.bias`);
    expect(mn.some((x) => x.includes('self_attn') && x.endsWith('.bias'))).toBe(false);
    expect(paramSpecs(mlp).find((p) => p.name === 'model.layers.0.mlp.down_proj.bias')!.shape).toEqual([mlp.hidden]);

    const both = parseConfig(small('LlamaForCausalLM', { attention_bias: true, mlp_bias: true }));
    expect(names(both).filter((x) => x.endsWith('.bias')).length).toBe(7 * both.layers);
    // per layer: q 4*8 + k 2*8 + v 2*8 + o 32, then gate 64 + up 64 + down 32
    expect(parameterCount(both) - parameterCount(none)).toBe(both.layers * (4 * 8 + 2 * 8 + 2 * 8 + 32 + 64 + 64 + 32));
    const logits = await forward(both, randomWeights(both, 5, 0.3), [1, 2, 3, 4]);
    expect(logits.every(Number.isFinite)).toBe(true);
  });
});

describe('unsupported configs are refused', () => {
  const refusal = (raw: RawConfig): string => {
    try {
      parseConfig(raw);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('parseConfig accepted an unsupported config');
  };

  test('architecture', () => {
    const msg = refusal(small('GPT2LMHeadModel'));
    expect(msg).toContain('architectures');
    expect(msg).toContain('GPT2LMHeadModel');
    for (const a of ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM']) expect(msg).toContain(a);
  });

  test('activation', () => {
    const msg = refusal(small('LlamaForCausalLM', { hidden_act: 'gelu_new' }));
    expect(msg).toContain('hidden_act');
    expect(msg).toContain('gelu_new');
    expect(msg).toContain('supported: silu');
  });

  test('rope scaling type', () => {
    const msg = refusal(small('LlamaForCausalLM', { rope_scaling: { rope_type: 'yarn', factor: 4 } }));
    expect(msg).toContain('rope_scaling');
    expect(msg).toContain('yarn');
    for (const t of ['default', 'linear', 'llama3']) expect(msg).toContain(t);
  });

  test('several problems are reported together', () => {
    const msg = refusal(small('GPT2LMHeadModel', { hidden_act: 'gelu_new' }));
    expect(msg).toContain('architectures');
    expect(msg).toContain('hidden_act');
  });
});

describe('llama3 RoPE scaling', () => {
  /** Hugging Face transformers' `_compute_default_rope_parameters` + `_compute_llama3_parameters`, written out. */
  function hfLlama3InvFreq(dim: number, base: number, factor: number, lowFreqFactor: number, highFreqFactor: number, oldContextLen: number): number[] {
    const invFreq: number[] = [];
    for (let i = 0; i < dim; i += 2) invFreq.push(1 / base ** (i / dim));
    const lowFreqWavelen = oldContextLen / lowFreqFactor;
    const highFreqWavelen = oldContextLen / highFreqFactor;
    return invFreq.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      const llama = wavelen > lowFreqWavelen ? f / factor : f; // torch.where(wavelen > low_freq_wavelen, ...)
      const smoothFactor = (oldContextLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      const smoothed = ((1 - smoothFactor) * llama) / factor + smoothFactor * llama;
      const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
      return isMedium ? smoothed : llama;
    });
  }

  test('matches the Hugging Face formula; ends behave as documented', () => {
    const c = parseConfig({
      architectures: ['LlamaForCausalLM'],
      vocab_size: 128,
      hidden_size: 64 * 4,
      intermediate_size: 512,
      num_hidden_layers: 1,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 64,
      rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    });
    expect(c.headDim).toBe(64);
    expect(c.ropeScaling.type).toBe('llama3');
    const got = scaledInvFreq(c);
    const want = hfLlama3InvFreq(64, 500000, 8, 1, 4, 8192);
    expect(got.length).toBe(32);
    for (let i = 0; i < 32; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-12 * want[i]!);

    const unscaled = Array.from({ length: 32 }, (_, i) => 1 / 500000 ** ((2 * i) / 64));
    expect(Math.abs(got[0]! - 1)).toBeLessThan(1e-15); // highest frequency (i = 0) unchanged
    expect(Math.abs(got[31]! - unscaled[31]! / 8)).toBeLessThan(1e-12 * unscaled[31]!); // lowest divided by factor
    // Short wavelengths (< 8192/4) are kept, long ones (> 8192/1) divided by 8, the band between is interpolated.
    let kept = 0, divided = 0, between = 0;
    for (let i = 0; i < 32; i++) {
      const wavelen = (2 * Math.PI) / unscaled[i]!;
      const ratio = got[i]! / unscaled[i]!;
      if (wavelen < 2048) { kept++; expect(Math.abs(ratio - 1)).toBeLessThan(1e-12); }
      else if (wavelen > 8192) { divided++; expect(Math.abs(ratio - 1 / 8)).toBeLessThan(1e-12); }
      else { between++; expect(ratio).toBeGreaterThan(1 / 8); expect(ratio).toBeLessThan(1); }
    }
    expect(kept).toBeGreaterThan(0);
    expect(divided).toBeGreaterThan(0);
    expect(between).toBeGreaterThan(0);
    // Monotone: the scaled frequencies still decrease with i.
    for (let i = 1; i < 32; i++) expect(got[i]!).toBeLessThan(got[i - 1]!);
  });
});

describe.skipIf(missingModel)('checkpoint does not match config.json', () => {
  test('missing tensor and wrong shape are both named, with expected and found shapes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tuneforge-bad-ckpt-'));
    tmpDirs.push(dir);
    await copyFile(join(MODEL, 'config.json'), join(dir, 'config.json'));
    const tensors = await readAll(join(MODEL, 'model.safetensors'));
    expect(tensors.has('model.layers.2.mlp.up_proj.weight')).toBe(true);
    tensors.delete('model.layers.2.mlp.up_proj.weight');
    const k = tensors.get('model.layers.0.self_attn.k_proj.weight')!; // [32, 64]
    tensors.set('model.layers.0.self_attn.k_proj.weight', { ...k, shape: [16, 64], data: (k.data as Float32Array).slice(0, 16 * 64) });
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);

    const err = await loadModel(dir).then(() => undefined, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    const msg = err!.message;
    expect(msg).toContain('model.layers.2.mlp.up_proj.weight');
    expect(msg).toContain('missing');
    expect(msg).toContain('[172,64]');
    expect(msg).toContain('model.layers.0.self_attn.k_proj.weight');
    expect(msg).toContain('[16,64]'); // found
    expect(msg).toContain('[32,64]'); // expected
    expect(msg).toMatch(/k_proj\.weight has shape \[16,64\], expected \[32,64\]/);
  });
});
