/**
 * Prefix tuning, prompt tuning and P-tuning (MLP and LSTM encoders) through the trainer on stories260k: the loss
 * falls, the exported PEFT folder holds only `prompt_embeddings`, and that folder read back gives the logits of the
 * run's final parameters (P-tuning's encoder output is what is saved).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, readAll, trace, type HostTensor, type Plugin, type PluginContext } from '../../core/index.ts';
import { buildCausalLM } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import { paramSpecs } from '../../core/models/params.ts';
import { PluginDriver } from '../../core/plugin/index.ts';
import { train } from '../../core/train/trainer.ts';
import { prefix, prompt, pTuning } from '../../plugins/index.ts';
import { readAdapter } from '../../plugins/peft/read.ts';
import { quiet, removeTempDirs, silentProgress, STORIES, storiesMissing, tempDir, tinyConfig, writeTinyData } from './helpers.ts';

afterAll(removeTempDirs);
const missing = storiesMissing('prompt-learning tests');

/** Logits [2, 8, V] of fixed ids with `plugin`'s hooks and `values` for its inputs. */
async function logitsWith(plugin: Plugin, values: ReadonlyMap<string, HostTensor>): Promise<Float32Array> {
  const { config, weights } = await loadModel(STORIES);
  const driver = new PluginDriver([plugin]);
  const ctx: PluginContext = { model: { config, specs: paramSpecs(config) }, run: { dir: '', seed: 0, totalSteps: 1 }, phase: 'eval', log: () => {}, plugin: () => undefined };
  const graph = trace((g) => ({ logits: buildCausalLM(g, config, { batch: 2, seq: 8, hooks: driver.modelHooks(ctx) }).logits }));
  const exe = await compile(graph, { resident: new Map([...weights, ...values]) });
  const ids: HostTensor = { dtype: 'int64', shape: [2, 8], data: BigInt64Array.from([1, 403, 407, 261, 378, 432, 383, 286, 1, 72, 304, 289, 30, 5, 99, 7], BigInt) };
  const out = (await exe.run({ input_ids: ids })).logits!.data as Float32Array;
  await exe.release();
  return out;
}

const CASES: { name: string; plugin: () => Plugin; peftType: string; lr: number }[] = [
  { name: 'prefix', plugin: () => prefix({ virtualTokens: 4 }), peftType: 'PREFIX_TUNING', lr: 3e-2 },
  { name: 'prefix with projection', plugin: () => prefix({ virtualTokens: 4, projection: true, encoderHidden: 16 }), peftType: 'PREFIX_TUNING', lr: 1e-2 },
  { name: 'prompt tuning from text', plugin: () => prompt({ virtualTokens: 5, init: 'text', initText: 'Once upon a time' }), peftType: 'PROMPT_TUNING', lr: 3e-2 },
  { name: 'P-tuning MLP', plugin: () => pTuning({ virtualTokens: 4 }), peftType: 'P_TUNING', lr: 1e-2 },
  { name: 'P-tuning LSTM', plugin: () => pTuning({ virtualTokens: 4, encoder: 'lstm', encoderHidden: 16 }), peftType: 'P_TUNING', lr: 1e-2 },
];

describe.skipIf(missing)('prompt learning through the trainer', () => {
  for (const c of CASES) {
    test(`${c.name}: trains, exports prompt_embeddings, reloads to the run's logits`, async () => {
      const dir = tempDir('prompt-learning');
      const config = tinyConfig(writeTinyData(dir), join(dir, 'run'), { train: { steps: 8, lr: c.lr }, export: { merged: 'auto', adapters: true } });
      const lines: string[] = [];
      const plugin = c.plugin();
      const result = await train({ config, plugins: [plugin], progress: silentProgress, log: (l) => { lines.push(l); quiet(l); } });
      const losses = readFileSync(join(config.output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number }).filter((m) => m.loss !== undefined).map((m) => m.loss!);
      expect(losses.at(-1)!).toBeLessThan(losses[0]!);
      expect(lines.some((l) => l.includes('no merged model'))).toBe(true); // 'auto' skips what cannot be merged

      const adapterDir = join(config.output, 'export', 'adapter');
      const file = await readAll(join(adapterDir, 'adapter_model.safetensors'));
      expect([...file.keys()]).toEqual(['prompt_embeddings']);
      expect(JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8')).peft_type).toBe(c.peftType);

      const reloaded = await readAdapter(adapterDir);
      const ours = await logitsWith(plugin, result.trained);
      const theirs = await logitsWith(reloaded.plugin, reloaded.tensors);
      let worst = 0;
      for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - theirs[i]!));
      expect(worst).toBeLessThan(1e-4);
    });
  }

  test('export.merged: true is refused before the model loads, naming the plugin', async () => {
    const dir = tempDir('prompt-merged');
    const config = tinyConfig(writeTinyData(dir), join(dir, 'run'), { export: { merged: true } });
    await expect(train({ config, plugins: [prefix({ virtualTokens: 2 })], progress: silentProgress, log: quiet })).rejects.toThrow(/export.merged is true, but tuneforge:prefix adds computation that cannot be folded/);
    // Every problem at once: the merged export and a plugin's own option problem in one error.
    await expect(train({ config, plugins: [prefix({ virtualTokens: 600 })], progress: silentProgress, log: quiet })).rejects.toThrow(/2 problems[\s\S]*virtualTokens 600 leaves no position[\s\S]*export.merged is true/);
  });
});
