/**
 * Every PEFT adapter folder of ../shared/fixtures/stories260k/peft through `grads --adapter`: the loss and the
 * gradient of every tensor of the adapter file against an independent PyTorch implementation's numbers; generation
 * with each prompt-learning adapter agrees between the cached and uncached paths; bad adapter configs are refused
 * naming the field.
 */
import { describe, expect, test } from 'bun:test';
import { cpSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adapterGenerator } from '../../cli/generate.ts';
import { computeGrads } from '../../cli/grads.ts';
import { createGenerator } from '../../core/generate/generator.ts';
import { loadModel, readAll } from '../../core/index.ts';
import { readAdapter } from '../../plugins/peft/read.ts';
import { FIXTURES, maxRelError, STORIES } from './fixtures.ts';

const PEFT = join(FIXTURES, 'peft');
const missing = !existsSync(PEFT);
if (missing) console.warn(`skipping PEFT adapter parity: ${PEFT} is absent`);

const FOLDERS = ['prompt_tuning', 'prefix_tuning', 'adalora', 'bottleneck'] as const;

describe.skipIf(missing)('PEFT adapters against the reference', () => {
  for (const name of FOLDERS) {
    test(`grads --adapter ${name}: loss within 1e-4, every gradient within 1e-3 relative`, async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'peft-grads-')), `${name}.safetensors`);
      const ours = await computeGrads({ model: STORIES, batch: join(FIXTURES, 'batch.safetensors'), adapter: join(PEFT, name), out });
      const ref = await readAll(join(PEFT, `${name}_grads.safetensors`));
      const losses = JSON.parse(await Bun.file(join(PEFT, 'peft_losses.json')).text()) as Record<string, number>;
      expect(Math.abs(Number(ours.get('loss')!.data[0]) - losses[name]!)).toBeLessThan(1e-4);
      let worst = 0;
      for (const [key, r] of ref) {
        const g = ours.get(key);
        expect(g, `gradient of ${key}`).toBeDefined();
        worst = Math.max(worst, maxRelError(g!.data as Float32Array, r.data as Float32Array));
      }
      console.log(`${name}: loss ${Number(ours.get('loss')!.data[0]).toFixed(6)} (reference ${losses[name]!.toFixed(6)}), worst relative gradient error ${worst.toExponential(2)} over ${ref.size} tensors`);
      expect(worst).toBeLessThan(1e-3);
      expect(ours.size).toBe(ref.size + 1);
      // The file on disk carries the adapter's own key names.
      expect([...(await readAll(out)).keys()].sort()).toEqual(['loss', ...ref.keys()].sort());
    });
  }

  for (const name of ['prompt_tuning', 'prefix_tuning'] as const) {
    test(`${name}: the KV cache holds the virtual positions before the prompt (cached == uncached)`, async () => {
      const { config, weights } = await loadModel(STORIES);
      const withAdapter = await adapterGenerator(join(PEFT, name), config, weights);
      const cached = await createGenerator({ config, ...withAdapter, maxLen: 48 });
      const plain = await createGenerator({ config, ...withAdapter, maxLen: 48, cache: false });
      const base = await createGenerator({ config, weights, maxLen: 48 });
      // Sampled (one seed), since greedy decoding of "Once upon a" hardly depends on a few random vectors.
      const prompt = [1, 403, 407, 261];
      const decoding = { maxNewTokens: 24, temperature: 1, seed: 5 };
      const a = await cached.generate(prompt, decoding);
      const b = await plain.generate(prompt, decoding);
      const c = await base.generate(prompt, decoding);
      expect(a).toEqual(b);
      expect(a).not.toEqual(c); // the adapter changes what the model says
      await Promise.all([cached.release(), plain.release(), base.release()]);
    });
  }

  test('unknown peft_type and malformed fields are refused naming the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-bad-'));
    cpSync(join(PEFT, 'prefix_tuning'), dir, { recursive: true });
    const config = JSON.parse(await Bun.file(join(dir, 'adapter_config.json')).text()) as Record<string, unknown>;
    const write = (c: Record<string, unknown>) => writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(c));
    write({ ...config, peft_type: 'IA3' });
    await expect(readAdapter(dir)).rejects.toThrow(/field 'peft_type': 'IA3' is not supported; supported: LORA, .*PREFIX_TUNING/);
    write({ ...config, num_virtual_tokens: 'five' });
    await expect(readAdapter(dir)).rejects.toThrow(/field 'num_virtual_tokens'/);
    write({ ...config, num_virtual_tokens: 4 });
    await expect(readAdapter(dir)).rejects.toThrow(/prompt_embeddings is \[5,320\], but the config describes \[4, 320\]/);
    write({ ...config, task_type: 'SEQ_CLS' });
    await expect(readAdapter(dir)).rejects.toThrow(/field 'task_type'/);
  });
});
