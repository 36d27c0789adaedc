/**
 * GGUF export checked by llama.cpp itself (node-llama-cpp's prebuilt CPU binary): a stories260k LoRA run exported
 * as F32, F16 and Q8_0 GGUF gives, under llama.cpp's greedy decoding, the tokens our own engine generates; the
 * prompts tokenise to the same ids (the tokenizer metadata); the LoRA adapter GGUF applied by llama.cpp to the base
 * GGUF gives the merged model's continuation; random Qwen2 and biased Llama models check the other layouts; the
 * refusals say what, why and what to do.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Llama, LlamaModel } from 'node-llama-cpp';
import { hostTensor } from '../../core/index.ts';
import { decodeQ8_0, ggufArchitecture, GgufUnsupportedError, readGguf } from '../../core/export/gguf/index.ts';
import { parseConfig } from '../../core/models/config.ts';
import { loadModel } from '../../core/models/load.ts';
import { randomWeights } from '../../core/models/params.ts';
import { loadTokenizer, type Tokenizer } from '../../core/tokenizer/index.ts';
import { writeModelFolder } from '../../core/train/export.ts';
import { exportModelGguf, exportRunGguf, exportRunGgufLora, ExportRefusal } from '../../cli/export-gguf.ts';
import { prefix } from '../../plugins/index.ts';
import { quiet, REPO, removeTempDirs, STORIES, SHARED, storiesMissing, tempDir, tinyConfig, writeTinyData } from '../train/helpers.ts';
import { loraPlugins, loraRunConfig, NEW_TOKENS, ourGreedy, PROMPTS, trainLoraRun } from './helpers.ts';

const missing = storiesMissing('GGUF export tests');

/** node-llama-cpp's prebuilt binary, loaded without install scripts or a build; why not, when it cannot be. */
let llama: Llama | undefined;
let llamaProblem = '';
if (!missing) {
  try {
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false });
  } catch (e) {
    llamaProblem = `node-llama-cpp could not load its prebuilt llama.cpp binary: ${(e as Error).message}`;
    console.warn(`skipping the llama.cpp checks: ${llamaProblem}`);
  }
}
const noLlama = missing || llama === undefined;

afterAll(async () => {
  await llama?.dispose();
  removeTempDirs();
});

/** llama.cpp's tokenisation of a prompt (BOS as the model's metadata says) and its greedy continuation. */
async function llamaGreedy(model: LlamaModel, text: string, lora?: string): Promise<{ prompt: number[]; out: number[] }> {
  const prompt = [...(model.tokens.shouldPrependBosToken && model.tokens.bos !== null ? [model.tokens.bos] : []), ...model.tokenize(text)].map(Number);
  // One thread: the model is tiny, and a second one only contends with the test runner.
  const ctx = await model.createContext({ contextSize: 128, threads: 1, ...(lora ? { lora: { adapters: [{ filePath: lora }] } } : {}) });
  const seq = ctx.getSequence();
  try {
    const out: number[] = [];
    for await (const t of seq.evaluate(prompt as never[], { temperature: 0 })) {
      out.push(Number(t));
      if (out.length >= NEW_TOKENS) break;
    }
    return { prompt, out };
  } finally {
    // The sequence first: disposing a context whose sequence is still open waits for it.
    seq.dispose();
    await ctx.dispose();
  }
}

const commonPrefix = (a: readonly number[], b: readonly number[]) => {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
};

describe.skipIf(noLlama)('GGUF export, loaded by llama.cpp', () => {
  const dir = missing ? '' : tempDir('gguf');
  const runConfig = missing ? undefined : loraRunConfig(dir);
  const plugins = loraPlugins;
  let tok: Tokenizer;
  const ours = new Map<string, number[]>(); // prompt -> our greedy continuation of the trained (LoRA) model
  const base = new Map<string, number[]>(); // the same for the base model
  const files: Record<string, string> = {};

  beforeAll(async () => {
    // Ours generates through the LoRA hooks (unmerged), as the run's samples do; llama.cpp runs the merged export.
    const run = await trainLoraRun(runConfig!);
    tok = await loadTokenizer(STORIES);
    const baseModel = await loadModel(STORIES);
    for (const p of PROMPTS) {
      ours.set(p, await ourGreedy(run.config, run.weights, tok.encode(p), run.hooks));
      base.set(p, await ourGreedy(baseModel.config, baseModel.weights, tok.encode(p)));
    }
    for (const q of ['f32', 'f16', 'q8_0'] as const) {
      files[q] = join(dir, `merged-${q}.gguf`);
      await exportRunGguf(runConfig!, plugins(), files[q]!, q, quiet);
    }
    files.base = join(dir, 'base-f32.gguf');
    await exportModelGguf(STORIES, files.base, 'f32');
    files.lora = join(dir, 'adapter.gguf');
    await exportRunGgufLora(runConfig!, plugins(), files.lora, quiet);
  }, 60_000);

  test('the files: llama metadata, tied embeddings (no output tensor), tensor types per quant, Q8_0 within half a step', async () => {
    const f32 = await readGguf(files.f32!);
    expect(f32.version).toBe(3);
    expect(f32.metadata.get('general.architecture')).toBe('llama');
    expect(f32.metadata.get('llama.block_count')).toBe(5);
    expect(f32.metadata.get('llama.attention.head_count_kv')).toBe(4);
    expect(f32.metadata.get('llama.rope.dimension_count')).toBe(8);
    expect(f32.metadata.get('tokenizer.ggml.model')).toBe('llama');
    expect((f32.metadata.get('tokenizer.ggml.tokens') as string[]).length).toBe(512);
    expect(f32.tensors.has('output.weight')).toBe(false);
    expect(f32.tensors.get('blk.0.ffn_down.weight')!.dims).toEqual([172, 64]); // ggml order: ne[0] = in
    const q8 = await readGguf(files.q8_0!);
    expect(q8.metadata.get('general.file_type')).toBe(7);
    expect(q8.tensors.get('blk.0.attn_v.weight')!.type).toBe('Q8_0');
    expect(q8.tensors.get('blk.0.ffn_down.weight')!.type).toBe('F16'); // 172 columns: not whole blocks of 32
    expect(q8.tensors.get('blk.0.attn_norm.weight')!.type).toBe('F32');
    // v_proj is not rotary-permuted, so it compares with the merged float32 directly: error ≤ half a quantum.
    const exact = new Float32Array(f32.data('blk.0.attn_v.weight').slice().buffer);
    const deq = decodeQ8_0(q8.data('blk.0.attn_v.weight'));
    for (let b = 0; b < exact.length / 32; b++) {
      const block = exact.subarray(b * 32, b * 32 + 32);
      const step = Math.max(...block.map(Math.abs)) / 127;
      for (let i = 0; i < 32; i++) expect(Math.abs(deq[b * 32 + i]! - block[i]!)).toBeLessThanOrEqual(step * (0.5 + 127 * 2 ** -11) + 1e-7);
    }
    const adapter = await readGguf(files.lora!);
    expect(adapter.metadata.get('general.type')).toBe('adapter');
    expect(adapter.metadata.get('adapter.type')).toBe('lora');
    expect(adapter.metadata.get('adapter.lora.alpha')).toBe(8);
    expect(adapter.tensors.get('blk.0.attn_q.weight.lora_a')!.dims).toEqual([64, 4]);
    expect(adapter.tensors.get('blk.0.attn_q.weight.lora_b')!.dims).toEqual([4, 64]);
    expect(adapter.tensors.get('blk.2.ffn_down.weight.lora_b')!.dims).toEqual([2, 64]);
  });

  test('llama.cpp tokenises prompts and harder texts to our ids (tokenizer metadata)', async () => {
    const model = await llama!.loadModel({ modelPath: files.f32! });
    try {
      for (const text of [...PROMPTS, '  two  spaces, then\na new line', 'Café, naïve — 🙂!', 'x=1+23*456', 'end.']) {
        expect(model.tokenize(text).map(Number)).toEqual(tok.encode(text, { addSpecialTokens: false }));
      }
      expect(model.tokens.shouldPrependBosToken).toBe(true);
      expect(model.tokens.bos).toBe(tok.bosId as never);
    } finally {
      await model.dispose();
    }
  });

  test('F32 and F16: llama.cpp greedy equals ours token for token; Q8_0: the figure', async () => {
    let q8Matched = 0;
    const perPrompt: number[] = [];
    for (const q of ['f32', 'f16', 'q8_0'] as const) {
      const model = await llama!.loadModel({ modelPath: files[q]! });
      try {
        for (const p of PROMPTS) {
          const { prompt, out } = await llamaGreedy(model, p);
          expect(prompt).toEqual(tok.encode(p));
          if (q === 'q8_0') perPrompt.push(commonPrefix(out, ours.get(p)!));
          else expect(out).toEqual(ours.get(p)!);
        }
      } finally {
        await model.dispose();
      }
    }
    const total = PROMPTS.length * NEW_TOKENS;
    q8Matched = perPrompt.reduce((a, b) => a + b, 0);
    console.log(`GGUF Q8_0: ${q8Matched}/${total} greedy tokens equal ours before the first difference (per prompt ${perPrompt.join(', ')} of ${NEW_TOKENS})`);
    expect(q8Matched).toBeGreaterThanOrEqual(total / 2);
    // The run changed the model, so the comparison is not only of the base model.
    expect(PROMPTS.some((p) => ours.get(p)!.join() !== base.get(p)!.join())).toBe(true);
  }, 30_000);

  test('the LoRA GGUF applied by llama.cpp to the base GGUF continues as the merged model', async () => {
    const model = await llama!.loadModel({ modelPath: files.base! });
    try {
      for (const p of PROMPTS) {
        expect((await llamaGreedy(model, p)).out).toEqual(base.get(p)!);
        expect((await llamaGreedy(model, p, files.lora)).out).toEqual(ours.get(p)!);
      }
    } finally {
      await model.dispose();
    }
  }, 30_000);

  test('other layouts: random Qwen2 (q/k/v biases, no permutation) and Llama with attention and MLP biases', async () => {
    const storiesRaw = (await loadModel(STORIES)).config.raw;
    for (const [name, extra] of [
      ['qwen2', { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' }],
      ['llama-bias', { attention_bias: true, mlp_bias: true }],
    ] as const) {
      const config = parseConfig({ ...storiesRaw, ...extra });
      // Larger than HF's init scale so the logits are peaked and greedy picks are far from ties.
      const weights = randomWeights(config, 7, 0.35);
      let s = 1;
      for (const [n, t] of weights) {
        if (n.endsWith('.bias')) weights.set(n, hostTensor('float32', t.shape, Float32Array.from(t.data as Float32Array, () => ((s = (s * 48271) % 2147483647) / 2147483647 - 0.5) * 0.6)));
      }
      const folder = join(dir, name);
      await writeModelFolder(folder, config, weights, STORIES);
      const path = join(dir, `${name}.gguf`);
      await exportModelGguf(folder, path, 'f32');
      const file = await readGguf(path);
      expect(file.metadata.get('general.architecture')).toBe(name === 'qwen2' ? 'qwen2' : 'llama');
      expect(file.tensors.has('blk.0.attn_q.bias')).toBe(true);
      const model = await llama!.loadModel({ modelPath: path });
      try {
        const expected: string[] = [];
        for (const p of PROMPTS) {
          const want = await ourGreedy(config, weights, tok.encode(p));
          expect((await llamaGreedy(model, p)).out).toEqual(want);
          expected.push(want.join());
        }
        // The biases matter to these continuations, so the match above is evidence that llama.cpp applies them.
        const unbiased = new Map([...weights].map(([n, t]) => [n, n.endsWith('.bias') ? hostTensor('float32', t.shape) : t]));
        const without: string[] = [];
        for (const p of PROMPTS) without.push((await ourGreedy(config, unbiased, tok.encode(p))).join());
        expect(without).not.toEqual(expected);
      } finally {
        await model.dispose();
      }
    }
  }, 60_000);
});

describe.skipIf(missing)('GGUF export refusals', () => {
  const dir = missing ? '' : tempDir('gguf-refuse');

  test('a plugin that cannot be merged (prefix tuning): named, with the adapter export suggested, before loading', async () => {
    const cfg = tinyConfig(writeTinyData(dir), join(dir, 'prefix-run'));
    const err = await exportRunGguf(cfg, [prefix({ virtualTokens: 4 })], join(dir, 'x.gguf'), 'f16', quiet).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ExportRefusal);
    expect((err as Error).message).toContain('tuneforge:prefix');
    expect((err as Error).message).toContain('without --format');
    const lora = await exportRunGgufLora(cfg, [prefix({ virtualTokens: 4 })], join(dir, 'x.gguf'), quiet).catch((e: Error) => e);
    expect((lora as Error).message).toContain('needs a LoRA run');
  });

  test('architectures llama.cpp cannot take from us', async () => {
    const qwen3 = join(SHARED, 'fixtures/archs/qwen3');
    const err = await exportModelGguf(qwen3, join(dir, 'q3.gguf'), 'f16').catch((e: Error) => e);
    expect(err).toBeInstanceOf(GgufUnsupportedError);
    expect((err as Error).message).toMatch(/Qwen3ForCausalLM.*convert_hf_to_gguf/);
    const stories = (await loadModel(STORIES)).config.raw;
    expect(() => ggufArchitecture(parseConfig({ ...stories, architectures: ['Qwen2ForCausalLM'], mlp_bias: true }))).toThrow(/no MLP biases/);
  }, 20_000);

  test('the command line: an unknown --format lists the formats (exit 2); gguf writes a file (exit 0)', () => {
    const cli = (args: string[]) => spawnSync(process.execPath, ['run', join(REPO, 'cli/main.ts'), ...args], { encoding: 'utf8', cwd: REPO });
    const bad = cli(['export', '--model', STORIES, '--format', 'tflite', '--out', join(dir, 'a')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("unknown --format 'tflite'");
    expect(bad.stderr).toMatch(/gguf:.*\n.*gguf-lora:/);
    const out = join(dir, 'stories-q8.gguf');
    const ok = cli(['export', '--model', STORIES, '--format', 'gguf', '--quant', 'q8_0', '--out', out]);
    expect(ok.status).toBe(0);
    expect(ok.stdout.trim()).toBe(out);
  }, 20_000);
});

