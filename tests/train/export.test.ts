/**
 * What a run leaves for other tools: `export/adapter` (a PEFT LoRA folder) and `export/model` (a merged model folder
 * in the Hugging Face layout). The adapter read back and applied to the base model gives the logits of the merged
 * model; a fully fine-tuned model is exported bit for bit.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, readAll, trace, type HostTensor, type Plugin } from '../../core/index.ts';
import { buildCausalLM, type ModelHooks } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import type { ModelConfig } from '../../core/models/config.ts';
import { loadTokenizer } from '../../core/tokenizer/index.ts';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune, lora } from '../../plugins/index.ts';
import { adapterHooks, readPeftAdapter } from '../../plugins/lora/adapter.ts';
import { bitDifferences, quiet, removeTempDirs, silentProgress, STORIES, storiesMissing, tempDir, tinyConfig, writeTinyData } from './helpers.ts';

afterAll(removeTempDirs);

const missing = storiesMissing('export tests');

async function trainAndExport(name: string, plugins: Plugin[]) {
  const dir = tempDir(`export-${name}`);
  const config = tinyConfig(writeTinyData(dir), join(dir, 'run'), { train: { steps: 4, lr: 2e-2 }, export: { merged: true, adapters: true } });
  const result = await train({ config, plugins, progress: silentProgress, log: quiet });
  return { result, exportDir: join(config.output, 'export') };
}

/** Logits [B, T, V] of a forward pass with `weights` baked in and `feeds` (adapter tensors) fed beside the ids. */
async function logits(config: ModelConfig, weights: ReadonlyMap<string, HostTensor>, ids: HostTensor, hooks?: (g: Parameters<Parameters<typeof trace>[0]>[0]) => ModelHooks, feeds: ReadonlyMap<string, HostTensor> = new Map()) {
  const [B, T] = ids.shape as [number, number];
  const graph = trace((g) => ({ logits: buildCausalLM(g, config, { batch: B, seq: T, hooks: hooks?.(g) }).logits }));
  const exe = await compile(graph, { resident: weights });
  const out = await exe.run({ input_ids: ids, ...Object.fromEntries(feeds) });
  await exe.release();
  return out.logits!.data as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe.skipIf(missing)('export', () => {
  test('LoRA: a PEFT adapter folder, and base + adapter gives the logits of the merged model folder', async () => {
    const plugins = [lora({ r: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'v_proj', 'down_proj'], rankPattern: { down_proj: 2 } })];
    const { result, exportDir } = await trainAndExport('lora', plugins);
    const adapterDir = join(exportDir, 'adapter');
    expect(result.exported).toContain(join(adapterDir, 'adapter_config.json'));

    const cfg = JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, lora_dropout: 0.1, bias: 'none', rank_pattern: { down_proj: 2 } });
    expect([...cfg.target_modules].sort()).toEqual(['down_proj', 'q_proj', 'v_proj']);

    // PEFT's names and shapes: A [r, in], B [out, r], under base_model.model.<module>.
    const raw = await readAll(join(adapterDir, 'adapter_model.safetensors'));
    expect(raw.size).toBe(5 * 3 * 2);
    const { config: modelConfig, weights: base } = await loadModel(STORIES);
    for (let layer = 0; layer < 5; layer++) {
      for (const [module, r] of [['self_attn.q_proj', 4], ['self_attn.v_proj', 4], ['mlp.down_proj', 2]] as const) {
        const site = `model.layers.${layer}.${module}`;
        const [out, inp] = base.get(`${site}.weight`)!.shape;
        expect(raw.get(`base_model.model.${site}.lora_A.weight`)?.shape).toEqual([r, inp!]);
        expect(raw.get(`base_model.model.${site}.lora_B.weight`)?.shape).toEqual([out!, r]);
        // The exported tensors are the trained ones.
        expect(raw.get(`base_model.model.${site}.lora_B.weight`)!.data).toEqual(result.trained.get(`${site}.lora_B.weight`)!.data);
      }
    }

    // The merged folder: config, tokenizer files, loadable; its weights differ from the base only where adapted.
    const modelDir = join(exportDir, 'model');
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) expect(existsSync(join(modelDir, f))).toBe(true);
    const merged = await loadModel(modelDir);
    expect(merged.config.raw).toEqual({ ...modelConfig.raw, torch_dtype: 'float32' });
    const tok = await loadTokenizer(modelDir);
    const changed = [...merged.weights].filter(([n, t]) => bitDifferences(new Map([[n, t]]), new Map([[n, base.get(n)!]])).length).map(([n]) => n);
    expect(changed.sort()).toEqual([...Array(5).keys()].flatMap((l) => ['mlp.down_proj', 'self_attn.q_proj', 'self_attn.v_proj'].map((m) => `model.layers.${l}.${m}.weight`)).sort());

    // Same logits: base model + adapter read back from disk vs the merged folder.
    const adapter = await readPeftAdapter(adapterDir);
    const texts = ['Once upon a time there was a cat', 'Tom and Lily went to the park'];
    const encoded = texts.map((t) => tok.encode(t));
    const T = Math.min(...encoded.map((e) => e.length));
    const ids: HostTensor = { dtype: 'int64', shape: [2, T], data: BigInt64Array.from(encoded.flatMap((e) => e.slice(0, T)), BigInt) };
    const viaAdapter = await logits(modelConfig, base, ids, (g) => adapterHooks(g, adapter.config), adapter.tensors);
    const viaMerged = await logits(merged.config, merged.weights, ids);
    const viaBase = await logits(modelConfig, base, ids);
    if (process.env.TUNEFORGE_TEST_LOG) console.log(`adapter vs merged ${maxAbsDiff(viaAdapter, viaMerged).toExponential(2)}, base vs merged ${maxAbsDiff(viaBase, viaMerged).toExponential(2)}`);
    expect(maxAbsDiff(viaAdapter, viaMerged)).toBeLessThan(1e-4);
    expect(maxAbsDiff(viaBase, viaMerged)).toBeGreaterThan(1e-2); // the adapter does change the model
  }, 30_000);

  test('full fine-tuning: the merged model holds exactly the trained weights', async () => {
    const { result, exportDir } = await trainAndExport('full', [fullFinetune()]);
    expect(existsSync(join(exportDir, 'adapter'))).toBe(false);
    const exported = await readAll(join(exportDir, 'model', 'model.safetensors'));
    expect(exported.size).toBe(result.trained.size);
    expect(bitDifferences(exported, result.trained)).toEqual([]);
    const { weights: base } = await loadModel(STORIES);
    expect(bitDifferences(exported, base).length).toBe(exported.size); // every tensor moved in training
    const reloaded = await loadModel(join(exportDir, 'model'));
    expect(bitDifferences(reloaded.weights, result.trained)).toEqual([]);
  }, 20_000);
});
