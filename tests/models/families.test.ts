/**
 * The model families beyond Llama (Qwen3, OLMo 2, SmolLM3, Gemma 2, Gemma 3 text, Phi-3, Mixtral, Qwen3-MoE) against
 * ../shared/fixtures/archs: the `grads` command reproduces each family's loss and every gradient, the logits match,
 * greedy and sampled generation with the KV cache equal the uncached reference, LoRA (alone and over NF4) trains on
 * every linear site of each family. Also: the refusal of unknown architectures names the families, both RoPE config
 * spellings, Gemma 3 multimodal checkpoints' text model, LongRoPE, and the MoE load-balancing loss.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compile, gradName, paramSpecs, parseConfig, randomWeights, trace, valueAndGrad, writeSafetensors, type HostTensor, type ModelConfig, type RawConfig,
} from '../../core/index.ts';
import { createGenerator } from '../../core/generate/generator.ts';
import { readAll } from '../../core/io/safetensors.ts';
import { buildCausalLM, causalLMLoss } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import { loadBalancingLoss, route } from '../../core/models/moe.ts';
import { longInvFreq, scaledInvFreq } from '../../core/models/rope-scaling.ts';
import { mulberry32 } from '../../core/data/rng.ts';
import { train } from '../../core/train/trainer.ts';
import { lora, nf4 } from '../../plugins/index.ts';
import { quiet, removeTempDirs, REPO, silentProgress, tempDir, tinyConfig, writeTinyData } from '../train/helpers.ts';
import { fixtureBatch, FIXTURES, maxRelError, SHARED } from './fixtures.ts';

const ARCHS = join(SHARED, 'fixtures/archs');
const BATCH = join(FIXTURES, 'batch.safetensors');
const missing = !existsSync(join(ARCHS, 'losses.json')) || !existsSync(BATCH);
if (missing) console.warn(`skipping model-family tests: ${ARCHS} is absent (see README, ../shared)`);

/** Fixture folder -> the architecture its config.json names, and the modules LoRA 'all-linear' must reach. */
const FAMILIES: Record<string, { arch: string; modules: string[] }> = {
  qwen3: { arch: 'Qwen3ForCausalLM', modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
  olmo2: { arch: 'Olmo2ForCausalLM', modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
  smollm3: { arch: 'SmolLM3ForCausalLM', modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
  gemma2: { arch: 'Gemma2ForCausalLM', modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
  gemma3_text: { arch: 'Gemma3ForCausalLM', modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
  phi3: { arch: 'Phi3ForCausalLM', modules: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'] },
  mixtral: { arch: 'MixtralForCausalLM', modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate', 'w1', 'w2', 'w3'] },
  qwen3_moe: { arch: 'Qwen3MoeForCausalLM', modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate', 'gate_proj', 'up_proj', 'down_proj'] },
};

const tmp: string[] = [];
afterAll(async () => {
  removeTempDirs();
  for (const d of tmp) await rm(d, { recursive: true, force: true });
});
const scratch = async () => {
  const d = await mkdtemp(join(tmpdir(), 'tuneforge-families-'));
  tmp.push(d);
  return d;
};
const ids = (values: readonly number[], shape: number[]): HostTensor => ({ dtype: 'int64', shape, data: BigInt64Array.from(values, BigInt) });
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
const moduleOf = (name: string) => name.replace(/\.lora_[AB]\.weight$/, '').replace(/^.*\./, '');

/** Loss of the full model on the fixture batch. */
async function fixtureLoss(config: ModelConfig, weights: ReadonlyMap<string, HostTensor>): Promise<number> {
  const graph = trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, config, { batch: 2, seq: 36 })) }));
  const exe = await compile(graph, { resident: weights });
  const out = await exe.run(await fixtureBatch());
  await exe.release();
  return Number(out.loss!.data[0]);
}

describe.skipIf(missing)('families against the fixtures: grads command, loss, gradients, logits', () => {
  const losses = missing ? {} : (JSON.parse(readFileSync(join(ARCHS, 'losses.json'), 'utf8')) as Record<string, number>);
  for (const [family, { arch }] of Object.entries(FAMILIES)) {
    test(`${family} (${arch})`, async () => {
      const model = join(ARCHS, family);
      const out = join(await scratch(), 'g.safetensors');
      const proc = Bun.spawnSync(['bun', 'run', 'cli/main.ts', 'grads', '--model', model, '--batch', BATCH, '--out', out], { cwd: REPO, stderr: 'pipe', stdout: 'pipe' });
      if (proc.exitCode !== 0) throw new Error(`grads failed: ${proc.stderr.toString()}`);
      const got = await readAll(out);
      const ref = await readAll(join(model, 'full_grads.safetensors'));
      const lossDiff = Math.abs(Number(got.get('loss')!.data[0]) - losses[family]!);
      expect([...got.keys()].filter((k) => k !== 'loss').sort()).toEqual([...ref.keys()].sort());
      let worst = 0, worstName = '';
      for (const [name, r] of ref) {
        const e = maxRelError(got.get(name)!.data as Float32Array, r.data as Float32Array);
        if (e > worst) [worst, worstName] = [e, name];
      }

      const { config, weights } = await loadModel(model);
      expect(config.architecture as string).toBe(arch);
      expect(paramSpecs(config).map((s) => s.name).sort()).toEqual([...ref.keys()].sort()); // every tensor, named as HF does
      const exe = await compile(trace((g) => ({ logits: buildCausalLM(g, config, { batch: 2, seq: 36 }).logits })), { resident: weights });
      const logits = (await exe.run({ input_ids: (await fixtureBatch()).input_ids })).logits!.data as Float32Array;
      await exe.release();
      const logitDiff = maxAbs(logits, (await readAll(join(model, 'logits.safetensors'))).get('logits')!.data as Float32Array);
      console.log(`${family}: |Δloss| ${lossDiff.toExponential(2)}, max |Δlogit| ${logitDiff.toExponential(2)}, worst gradient ${worst.toExponential(2)} (${worstName})`);
      expect(lossDiff).toBeLessThan(1e-4);
      expect(logitDiff).toBeLessThan(1e-4);
      expect(worst).toBeLessThan(1e-3);
    }, 60_000);
  }
});

describe.skipIf(missing)('families: generation with the KV cache equals generation without it', () => {
  for (const family of Object.keys(FAMILIES)) {
    test(family, async () => {
      const { config, weights } = await loadModel(join(ARCHS, family));
      const maxLen = 32; // past Gemma's windows (5, 6): sliding layers drop keys while decoding
      const cached = await createGenerator({ config, weights, maxLen });
      const plain = await createGenerator({ config, weights, maxLen, cache: false });
      const prompt = [1, 100, 200, 300, 50];
      for (const opts of [{ maxNewTokens: 24 }, { maxNewTokens: 24, temperature: 1, seed: 5 }]) {
        const a = await cached.generate(prompt, opts);
        expect(a.length).toBe(24);
        expect(a).toEqual(await plain.generate(prompt, opts));
      }
      await Promise.all([cached.release(), plain.release()]);

      // Stronger than tokens: the one-token decode graph's logits at every step equal the full pass's.
      const tokens = [1, 7, 300, 45, 12, 480, 33, 9, 250, 77, 3, 64];
      const full = trace((g) => ({ logits: buildCausalLM(g, config, { batch: 1, seq: tokens.length }).logits }));
      const fullExe = await compile(full, { resident: weights });
      const reference = (await fullExe.run({ input_ids: ids(tokens, [1, tokens.length]) })).logits!.data as Float32Array;
      await fullExe.release();
      const step = trace((g) => {
        const m = buildCausalLM(g, config, { batch: 1, seq: 1, cache: { maxLen: 16 } });
        return { logits: m.logits, ...m.cacheOut };
      });
      const exe = await compile(step, { resident: weights });
      const shape = [1, config.kvHeads, 16, config.headDim];
      const cache: Record<string, HostTensor> = {};
      for (let i = 0; i < config.layers; i++) for (const kv of ['k', 'v']) cache[`past.${kv}.${i}`] = { dtype: 'float32', shape, data: new Float32Array(shape.reduce((x, y) => x * y)) };
      const V = config.vocabSize;
      let worst = 0;
      for (let t = 0; t < tokens.length; t++) {
        const r = await exe.run({ input_ids: ids([tokens[t]!], [1, 1]), position: ids([t], [1]), ...cache });
        for (const k of Object.keys(cache)) cache[k] = r[k.replace('past.', 'present.')]!;
        worst = Math.max(worst, maxAbs(r.logits!.data as Float32Array, reference.subarray(t * V, (t + 1) * V)));
      }
      await exe.release();
      expect(worst).toBeLessThan(1e-4);
    }, 60_000);
  }
});

describe.skipIf(missing)('families: LoRA trains on every linear site, alone and over NF4', () => {
  const lossesOf = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')
    .map((l) => JSON.parse(l) as { loss?: number }).flatMap((m) => (m.loss === undefined ? [] : [m.loss]));
  for (const [family, { modules }] of Object.entries(FAMILIES)) {
    test(family, async () => {
      for (const withNf4 of [false, true]) {
        const dir = tempDir(`family-${family}`);
        // Eight records in one batch: every step sees the same data, so the loss must fall.
        const config = tinyConfig(writeTinyData(dir, 8), join(dir, 'run'), { model: join(ARCHS, family), train: { steps: 5, batchSize: 8, lr: 1e-2 } });
        const quant = nf4();
        const plugins = [...(withNf4 ? [quant] : []), lora({ r: 4, alpha: 8, targets: 'all-linear' })];
        const result = await train({ config, plugins, progress: silentProgress, log: quiet });
        const losses = lossesOf(config.output);
        console.log(`${family}${withNf4 ? ' NF4 +' : ''} LoRA: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
        expect(losses.length).toBe(5);
        for (const l of losses) expect(Number.isFinite(l)).toBe(true);
        expect(losses.at(-1)!).toBeLessThan(losses[0]!);
        for (const name of result.trained.keys()) expect(name).toMatch(/\.lora_[AB]\.weight$/);
        expect([...new Set([...result.trained.keys()].map(moduleOf))].sort()).toEqual([...modules].sort());
        if (withNf4) {
          // model:param stored every linear weight of the family in 4 bits (fused and expert projections included).
          const quantised = [...quant.api!.quantized.keys()].map((n) => n.replace(/\.weight$/, '').replace(/^.*\./, ''));
          expect([...new Set(quantised)].sort()).toEqual([...modules].sort());
        }
      }
    }, 120_000);
  }
});

describe('family configs', () => {
  const tiny = (architecture: string, extra: Partial<RawConfig> & Record<string, unknown> = {}): RawConfig => ({
    architectures: [architecture], vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, ...extra,
  });

  test('an unsupported architecture is refused, naming every supported family', () => {
    let msg = '';
    try {
      parseConfig(tiny('GPT2LMHeadModel'));
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain("architectures: 'GPT2LMHeadModel' is not supported");
    for (const { arch } of Object.values(FAMILIES)) expect(msg).toContain(arch);
    for (const a of ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Gemma3ForConditionalGeneration']) expect(msg).toContain(a);
  });

  test('RoPE settings read the same from rope_parameters (transformers 5) and rope_scaling with type or rope_type', () => {
    const old = parseConfig(tiny('Gemma3ForCausalLM', { hidden_activation: 'gelu_pytorch_tanh', rope_theta: 1e6, rope_local_base_freq: 1e4, rope_scaling: { type: 'linear', factor: 8 } }));
    const neu = parseConfig(tiny('Gemma3ForCausalLM', {
      hidden_activation: 'gelu_pytorch_tanh',
      rope_parameters: { full_attention: { rope_type: 'linear', factor: 8, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } },
    }));
    for (const c of [old, neu]) {
      expect(c.ropeTheta).toBe(1e6);
      expect(c.family.localRopeTheta).toBe(1e4);
      expect(c.ropeScaling).toEqual({ type: 'linear', factor: 8 });
    }
    const flat = parseConfig(tiny('Qwen3ForCausalLM', { rope_parameters: { rope_type: 'default', rope_theta: 5e5 } }));
    expect(flat.ropeTheta).toBe(5e5);
    expect(flat.ropeScaling).toEqual({ type: 'default' });
  });

  test('per-layer choices: Gemma 3 sliding_window_pattern, SmolLM3 no_rope_layer_interval, Qwen3-MoE dense layers', () => {
    const g3 = parseConfig(tiny('Gemma3ForCausalLM', { hidden_activation: 'gelu_pytorch_tanh', num_hidden_layers: 6, sliding_window: 3, sliding_window_pattern: 3 }));
    expect(g3.family.layers.map((l) => [l.slidingWindow, l.rope])).toEqual([[3, 'local'], [3, 'local'], [null, 'global'], [3, 'local'], [3, 'local'], [null, 'global']]);
    const smol = parseConfig(tiny('SmolLM3ForCausalLM', { num_hidden_layers: 8, no_rope_layer_interval: 4 }));
    expect(smol.family.layers.map((l) => l.rope)).toEqual(['global', 'global', 'global', null, 'global', 'global', 'global', null]);
    const moe = parseConfig(tiny('Qwen3MoeForCausalLM', { num_hidden_layers: 4, num_experts: 4, num_experts_per_tok: 2, moe_intermediate_size: 8, decoder_sparse_step: 2, mlp_only_layers: [3] }));
    expect(moe.family.layers.map((l) => l.moe)).toEqual([false, true, false, false]);
    const names = paramSpecs(moe).map((s) => s.name);
    expect(names).toContain('model.layers.0.mlp.gate_proj.weight');
    expect(names).toContain('model.layers.1.mlp.experts.3.down_proj.weight');
    expect(names).not.toContain('model.layers.3.mlp.gate.weight');
  });

  test('Gemma 2 refuses a SiLU MLP, with the supported activation', () => {
    expect(() => parseConfig(tiny('Gemma2ForCausalLM', { hidden_activation: 'silu' }))).toThrow(/hidden_act: 'silu' is not supported for Gemma2ForCausalLM; supported: gelu_pytorch_tanh/);
  });
});

describe('LongRoPE (Phi-3 rope_scaling)', () => {
  const raw = (short: number[], long: number[]): RawConfig => ({
    architectures: ['Phi3ForCausalLM'], vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, original_max_position_embeddings: 8,
    partial_rotary_factor: 0.5, rope_scaling: { type: 'longrope', short_factor: short, long_factor: long },
  } as RawConfig);

  test('frequencies and attention factor follow transformers; a pass reaching the original length switches to the long factors', async () => {
    const short = [1, 1.5, 2, 3], long = [2, 4, 8, 16];
    const c = parseConfig(raw(short, long));
    expect(c.family.rotaryDim).toBe(8);
    if (c.ropeScaling.type !== 'longrope') throw new Error('expected longrope');
    expect(c.ropeScaling.attentionFactor).toBeCloseTo(Math.sqrt(1 + Math.log(32 / 8) / Math.log(8)), 12);
    const base = Array.from({ length: 4 }, (_, i) => 1 / 10000 ** ((2 * i) / 8));
    const shortFreq = scaledInvFreq(c), longFreq = longInvFreq(c)!;
    expect(shortFreq.length).toBe(4);
    for (let i = 0; i < 4; i++) {
      expect(shortFreq[i]!).toBeCloseTo(base[i]! / short[i]!, 12); // inv_freq = 1 / (factor · base^(2i/d))
      expect(longFreq[i]!).toBeCloseTo(base[i]! / long[i]!, 12);
    }

    const weights = randomWeights(c, 3, 0.3);
    const run = async (cfg: ModelConfig, tokens: number[]) => {
      const exe = await compile(trace((g) => ({ logits: buildCausalLM(g, cfg, { batch: 1, seq: tokens.length }).logits })), { resident: weights });
      const out = (await exe.run({ input_ids: ids(tokens, [1, tokens.length]) })).logits!.data as Float32Array;
      await exe.release();
      return out;
    };
    const other = parseConfig(raw([5, 5, 5, 5], [7, 7, 7, 7]));
    const shortOnly = parseConfig(raw(short, [7, 7, 7, 7])), longOnly = parseConfig(raw([5, 5, 5, 5], long));
    const seven = [3, 9, 27, 17, 51, 25, 11], nine = [...seven, 33, 4];
    // 7 positions (last 6 < 8): only the short factors matter; 9 positions (last 8): only the long ones.
    expect(maxAbs(await run(c, seven), await run(shortOnly, seven))).toBe(0);
    expect(maxAbs(await run(c, seven), await run(other, seven))).toBeGreaterThan(1e-4);
    expect(maxAbs(await run(c, nine), await run(longOnly, nine))).toBe(0);
    expect(maxAbs(await run(c, nine), await run(other, nine))).toBeGreaterThan(1e-4);
  });
});

describe.skipIf(missing)('Gemma 3 multimodal checkpoints: the text model', () => {
  test('Gemma3ForConditionalGeneration with weights under language_model.model.* or model.language_model.* loads as Gemma3ForCausalLM', async () => {
    const src = join(ARCHS, 'gemma3_text');
    const text = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
    const tensors = await readAll(join(src, 'model.safetensors'));
    const { config: ref, weights: refWeights } = await loadModel(src);
    const refLoss = await fixtureLoss(ref, refWeights);
    for (const prefix of ['language_model.model.', 'model.language_model.']) {
      const dir = await scratch();
      const { architectures: _a, ...textConfig } = text;
      await writeFile(join(dir, 'config.json'), JSON.stringify({ architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3', text_config: textConfig, vision_config: { hidden_size: 16 } }));
      await copyFile(join(src, 'tokenizer.json'), join(dir, 'tokenizer.json'));
      const renamed = new Map([...tensors].map(([n, t]) => [n.replace(/^model\./, prefix), t]));
      renamed.set('vision_tower.vision_model.embeddings.patch_embedding.weight', { dtype: 'float32', shape: [2], data: new Float32Array(2) }); // not loaded
      await writeSafetensors(join(dir, 'model.safetensors'), renamed);
      const { config, weights } = await loadModel(dir);
      expect(config.architecture).toBe('Gemma3ForConditionalGeneration');
      expect(config.family.name).toBe('gemma3');
      expect((config.raw.architectures as string[])[0]).toBe('Gemma3ForCausalLM'); // exported as the text model
      expect([...weights.keys()].sort()).toEqual([...refWeights.keys()].sort());
      expect(await fixtureLoss(config, weights)).toBe(refLoss);
    }
  });
});

describe('MoE routing and load-balancing loss against a direct transcription of transformers', () => {
  test('top-k weights (renormalised or not) and E·Σ_e f_e·P_e over the concatenated layers', async () => {
    const E = 5, k = 2, N = 6, layers = 3;
    const rand = mulberry32(11);
    const logits = Array.from({ length: layers }, () => Float64Array.from({ length: N * E }, () => 3 * (rand() - 0.5)));
    for (const renormalize of [true, false]) {
      const graph = trace((g) => {
        const stats = logits.map((_, l) => route(g.input(`logits.${l}`, 'float64', [1, N, E]), k, renormalize));
        return { aux: loadBalancingLoss(stats, E), ...Object.fromEntries(stats.map((s, l) => [`w.${l}`, s.weights])) };
      });
      const exe = await compile(graph);
      const out = await exe.run(Object.fromEntries(logits.map((d, l) => [`logits.${l}`, { dtype: 'float64', shape: [1, N, E], data: d } as HostTensor])));
      await exe.release();
      // load_balancing_loss_func: routing_weights = softmax(cat(gate_logits)); expert_mask = one_hot(topk(...).indices);
      // tokens_per_expert = mean(expert_mask, 0); router_prob_per_expert = mean(routing_weights, 0);
      // loss = sum(tokens_per_expert * router_prob_per_expert) * num_experts.
      const rows = logits.flatMap((d) => Array.from({ length: N }, (_, n) => {
        const z = Array.from(d.subarray(n * E, (n + 1) * E));
        const m = Math.max(...z), ex = z.map((v) => Math.exp(v - m)), s = ex.reduce((a, b) => a + b);
        return ex.map((v) => v / s);
      }));
      const top = rows.map((p) => [...p.keys()].sort((a, b) => p[b]! - p[a]!).slice(0, k));
      let aux = 0;
      for (let e = 0; e < E; e++) {
        const f = top.filter((t) => t.includes(e)).length / rows.length;
        const P = rows.reduce((a, p) => a + p[e]!, 0) / rows.length;
        aux += f * P;
      }
      expect(Number(out.aux!.data[0])).toBeCloseTo(aux * E, 12);
      rows.forEach((p, r) => {
        const [l, n] = [Math.floor(r / N), r % N];
        const w = out[`w.${l}`]!.data as Float64Array;
        const kept = top[r]!.reduce((a, e) => a + p[e]!, 0);
        for (let e = 0; e < E; e++) {
          const want = top[r]!.includes(e) ? p[e]! / (renormalize ? kept : 1) : 0;
          expect(w[n * E + e]!).toBeCloseTo(want, 12);
        }
      });
    }
  });
});

describe.skipIf(missing)('MoE load-balancing loss in the model', () => {
  test('added inside the graph only with output_router_logits; E·Σ f_e P_e, with a gradient into the routers', async () => {
    for (const family of ['mixtral', 'qwen3_moe']) {
      const dir = join(ARCHS, family);
      const { config, weights } = await loadModel(dir);
      const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as RawConfig & Record<string, unknown>;
      const withAux = parseConfig({ ...raw, output_router_logits: true });
      const coef = raw.router_aux_loss_coef as number;
      const E = withAux.family.moe!.experts, k = withAux.family.moe!.topK;
      expect(config.family.moe!.auxLossCoef).toBeNull();
      expect(withAux.family.moe!.auxLossCoef).toBe(coef);

      const lossAndGrads = async (c: ModelConfig) => {
        const graph = trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, c, { batch: 2, seq: 36 })) }));
        const exe = await compile(valueAndGrad(graph, { of: 'loss', wrt: [...weights.keys()] }));
        const out = await exe.run({ ...Object.fromEntries(weights), ...(await fixtureBatch()) });
        await exe.release();
        return out;
      };
      const plain = await lossAndGrads(config), aux = await lossAndGrads(withAux);
      const auxValue = (Number(aux.loss!.data[0]) - Number(plain.loss!.data[0])) / coef;
      console.log(`${family}: load-balancing loss ${auxValue.toFixed(4)} (perfectly balanced routing gives k = ${k}; at most E = ${E})`);
      // Σ_e f_e = k with f_e ≤ 1 and Σ_e P_e = 1: the loss lies in (0, E], and equals k when routing is balanced.
      // A random router is roughly balanced.
      expect(auxValue).toBeGreaterThan(0.5 * k);
      expect(auxValue).toBeLessThanOrEqual(E);
      const router = family === 'mixtral' ? 'model.layers.0.block_sparse_moe.gate.weight' : 'model.layers.0.mlp.gate.weight';
      expect(maxAbs(aux[gradName(router)]!.data as Float32Array, plain[gradName(router)]!.data as Float32Array)).toBeGreaterThan(0);
      const last = `model.layers.${config.layers - 1}`;
      const expert = family === 'mixtral' ? `${last}.block_sparse_moe.experts.0.w2.weight` : `${last}.mlp.experts.0.down_proj.weight`;
      // The last layer's expert outputs reach no router: only the cross-entropy depends on them.
      expect(maxRelError(aux[gradName(expert)]!.data as Float32Array, plain[gradName(expert)]!.data as Float32Array)).toBeLessThan(1e-6);
    }
  });
});
