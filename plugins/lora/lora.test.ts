/** LoRA's own pieces: PEFT initialisation, scaling, target matching, merge and unmerge. */
import { expect, test } from 'bun:test';
import { hostTensor, paramSpecs, parseConfig, type HostTensor, type PluginContext } from '../../core/index.ts';
import { lora, type LoraApi } from './index.ts';
import { loraScaling } from './layer.ts';
import { targetMatcher } from './targets.ts';

const site = (name: string) => ({ name, module: name.slice(name.lastIndexOf('.') + 1), layer: 0, inFeatures: 0, outFeatures: 0 });

test('target_modules semantics: names, regular expression, all-linear', () => {
  expect(targetMatcher(['q_proj', 'v_proj'])(site('model.layers.0.self_attn.q_proj'))).toBe(true);
  expect(targetMatcher(['q_proj'])(site('model.layers.0.self_attn.k_proj'))).toBe(false);
  expect(targetMatcher('.*layers\\.1\\..*proj')(site('model.layers.1.mlp.up_proj'))).toBe(true);
  expect(targetMatcher('.*layers\\.1\\..*proj')(site('model.layers.11.mlp.up_proj'))).toBe(false);
  expect(targetMatcher('all-linear')(site('lm_head'))).toBe(false);
  expect(() => targetMatcher('(')).toThrow('target_modules: invalid regular expression');
});

test('scaling: alpha / r, or alpha / sqrt(r) with rsLoRA', () => {
  expect(loraScaling(8, 16)).toBe(2);
  expect(loraScaling(16, 16, true)).toBe(4);
});

test('A starts Kaiming-uniform within ±1/sqrt(in), B at zero; merge then unmerge restores W', () => {
  const config = parseConfig({ architectures: ['LlamaForCausalLM'], vocab_size: 16, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2 });
  const plugin = lora({ r: 2, alpha: 4, targets: ['q_proj'] });
  const ctx: PluginContext = { model: { config, specs: paramSpecs(config) }, run: { dir: '', seed: 1, totalSteps: 1 }, phase: 'train', log: () => {}, plugin: () => undefined };
  // Register the adapted module as tracing the model would.
  const api = plugin.api as LoraApi;
  (api.adapted as Map<string, unknown>).set('model.layers.0.self_attn.q_proj', { site: { ...site('model.layers.0.self_attn.q_proj'), inFeatures: 8, outFeatures: 8 }, r: 2, alpha: 4 });
  const init = plugin['params:init']!(ctx, [
    { name: 'model.layers.0.self_attn.q_proj.lora_A.weight', shape: [2, 8] },
    { name: 'model.layers.0.self_attn.q_proj.lora_B.weight', shape: [8, 2] },
  ]) as Map<string, HostTensor>;
  const a = init.get('model.layers.0.self_attn.q_proj.lora_A.weight')!.data as Float32Array;
  expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(8));
  expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(0);
  expect([...(init.get('model.layers.0.self_attn.q_proj.lora_B.weight')!.data as Float32Array)].every((v) => v === 0)).toBe(true);

  const w = hostTensor('float32', [8, 8], Array.from({ length: 64 }, (_, i) => Math.cos(i)));
  const b = hostTensor('float32', [8, 2], Array.from({ length: 16 }, (_, i) => 0.1 * (i - 8)));
  const trained = new Map([['model.layers.0.self_attn.q_proj.lora_A.weight', init.get('model.layers.0.self_attn.q_proj.lora_A.weight')!], ['model.layers.0.self_attn.q_proj.lora_B.weight', b]]);
  const weights = new Map([['model.layers.0.self_attn.q_proj.weight', w]]);
  const merged = api.merge(weights, trained).get('model.layers.0.self_attn.q_proj.weight')!.data as Float32Array;
  // merged = W + 2 · B A
  for (let o = 0; o < 8; o++) for (let i = 0; i < 8; i++) {
    let ba = 0;
    for (let k = 0; k < 2; k++) ba += (b.data as Float32Array)[o * 2 + k]! * a[k * 8 + i]!;
    expect(merged[o * 8 + i]!).toBeCloseTo((w.data as Float32Array)[o * 8 + i]! + 2 * ba, 5);
  }
  const back = api.unmerge(new Map([['model.layers.0.self_attn.q_proj.weight', hostTensor('float32', [8, 8], merged)]]), trained);
  (back.get('model.layers.0.self_attn.q_proj.weight')!.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo((w.data as Float32Array)[i]!, 5));
});
