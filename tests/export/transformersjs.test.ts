/**
 * The transformers.js export (`--format onnx`) checked by transformers.js itself (@huggingface/transformers 4.3.1,
 * under Bun, offline): a stories260k LoRA run exported as a folder loads as a causal LM from disk and its greedy
 * generation equals ours token for token; the decoder's logits through onnxruntime equal our model's, across calls
 * that carry the key/value cache and with left padding; the fixture models of the other families and random Qwen2 and
 * Mistral (sliding window) models continue as ours; the refusals say what, why and what to do.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AutoModelForCausalLM, AutoTokenizer, env, Tensor as TjsTensor, type PreTrainedModel } from '@huggingface/transformers';
import * as ort from 'onnxruntime-node';
import { compile } from '../../core/compile.ts';
import type { HostTensor } from '../../core/index.ts';
import { exportModelOnnx, exportRunOnnx, OnnxUnsupportedError } from '../../core/export/onnx/index.ts';
import { trace } from '../../core/ir/graph.ts';
import { parseConfig, type ModelConfig } from '../../core/models/config.ts';
import { buildCausalLM } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import { randomWeights } from '../../core/models/params.ts';
import { loadTokenizer, type Tokenizer } from '../../core/tokenizer/index.ts';
import { writeModelFolder } from '../../core/train/export.ts';
import { exportGgufCommand, ExportRefusal } from '../../cli/export-gguf.ts';
import { prefix } from '../../plugins/index.ts';
import { quiet, REPO, removeTempDirs, SHARED, STORIES, storiesMissing, tempDir, tinyConfig, writeTinyData } from '../train/helpers.ts';
import { loraPlugins, loraRunConfig, NEW_TOKENS, ourGreedy, PROMPTS, trainLoraRun, type TrainedRun } from './helpers.ts';

const missing = storiesMissing('transformers.js export tests');
const ARCHS = join(SHARED, 'fixtures/archs');
const archsMissing = !existsSync(ARCHS);
if (archsMissing && !missing) console.warn(`skipping the family checks of the transformers.js export: ${ARCHS} is absent; see README (../shared)`);

// Offline: local folders only, nothing cached, and any attempt to fetch fails the test instead of reaching a network.
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.useFSCache = false;
env.fetch = (() => {
  throw new Error('transformers.js tried to fetch a file; the export must load from disk alone');
}) as typeof env.fetch;

afterAll(removeTempDirs);

/** transformers.js's causal LM from an exported folder (a local model id under env.localModelPath). */
async function loadTjs(folder: string): Promise<PreTrainedModel> {
  env.localModelPath = dirname(folder);
  return AutoModelForCausalLM.from_pretrained(basename(folder));
}

/** transformers.js's greedy continuation (new tokens only; the EOS it stops on dropped, as ours stops before it). */
async function tjsGreedy(model: PreTrainedModel, prompt: readonly number[], eos: readonly number[]): Promise<number[]> {
  const ids = new TjsTensor('int64', BigInt64Array.from(prompt, BigInt), [1, prompt.length]);
  const mask = new TjsTensor('int64', new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]);
  const out = (await model.generate({ input_ids: ids, attention_mask: mask, max_new_tokens: NEW_TOKENS, do_sample: false } as never)) as TjsTensor;
  const tokens = (out.tolist() as bigint[][])[0]!.slice(prompt.length).map(Number);
  return tokens.length && eos.includes(tokens.at(-1)!) ? tokens.slice(0, -1) : tokens;
}

const i64 = (values: readonly number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);

/** Our model's logits over whole sequences [1, n, V] (full causal pass, the run's hooks applied). */
async function ourLogits(run: TrainedRun, ids: readonly number[]): Promise<Float32Array> {
  const exe = await compile(trace((g) => ({ logits: buildCausalLM(g, run.config, { batch: 1, seq: ids.length, hooks: run.hooks(g) }).logits })), { resident: run.weights });
  try {
    return (await exe.run({ input_ids: { dtype: 'int64', shape: [1, ids.length], data: BigInt64Array.from(ids, BigInt) } })).logits!.data as Float32Array;
  } finally {
    await exe.release();
  }
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe.skipIf(missing)('transformers.js export of a LoRA run, loaded by transformers.js', () => {
  const dir = missing ? '' : tempDir('tjs');
  const runConfig = missing ? undefined : loraRunConfig(dir);
  const folder = join(dir, 'stories-lora');
  let run: TrainedRun;
  let tok: Tokenizer;
  let eos: number[];
  const ours = new Map<string, number[]>();

  beforeAll(async () => {
    run = await trainLoraRun(runConfig!);
    tok = await loadTokenizer(STORIES);
    eos = run.config.eosTokenIds;
    for (const p of PROMPTS) ours.set(p, await ourGreedy(run.config, run.weights, tok.encode(p), run.hooks, eos));
    await exportRunOnnx(runConfig!, loraPlugins(), folder, quiet);
  }, 60_000);

  test('the folder: config with the llama model type, tokenizer and generation files, the decoder with free batch, sequence and past axes', async () => {
    expect(readdirSync(folder).sort()).toEqual(['config.json', 'generation_config.json', 'onnx', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    expect(readdirSync(join(folder, 'onnx'))).toEqual(['model.onnx']);
    const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config.model_type).toBe('llama');
    expect(config['transformers.js_config']).toEqual({ dtype: 'fp32' });
    const session = await ort.InferenceSession.create(join(folder, 'onnx', 'model.onnx'));
    try {
      const shapes = Object.fromEntries(session.inputMetadata.map((m) => [m.name, m.isTensor ? m.shape : []]));
      expect(shapes.input_ids).toEqual(['batch_size', 'sequence_length']);
      expect(shapes.attention_mask).toEqual(['batch_size', 'past_sequence_length+sequence_length']);
      expect(shapes.position_ids).toEqual(['batch_size', 'sequence_length']);
      // transformers.js builds the first call's empty past from this: batch_size filled in, every other name 0.
      expect(shapes['past_key_values.4.value']).toEqual(['batch_size', 4, 'past_sequence_length', 8]);
      expect(session.inputNames.length).toBe(3 + 2 * 5);
      expect([...session.outputNames].sort()).toEqual(['logits', ...[0, 1, 2, 3, 4].flatMap((l) => [`present.${l}.key`, `present.${l}.value`])].sort());
    } finally {
      await session.release();
    }
  });

  test('greedy generation: transformers.js (offline, from the folder) equals ours token for token for three prompts', async () => {
    env.localModelPath = dirname(folder);
    const tjsTok = await AutoTokenizer.from_pretrained(basename(folder));
    const model = await loadTjs(folder);
    const base = await loadModel(STORIES);
    let changed = false;
    try {
      for (const p of PROMPTS) {
        const prompt = tok.encode(p);
        expect(Array.from((tjsTok(p).input_ids as TjsTensor).data as BigInt64Array, Number)).toEqual(prompt); // tokenizer files, BOS included
        const theirs = await tjsGreedy(model, prompt, eos);
        expect(theirs).toEqual(ours.get(p)!);
        expect(theirs.length).toBeGreaterThan(5);
        expect(tjsTok.decode(theirs, { skip_special_tokens: true })).toBe(tok.decode(theirs, { skipSpecialTokens: true }));
        // The run changed the model, so this compares the fine-tuned model, not only the base one.
        if ((await ourGreedy(base.config, base.weights, prompt, undefined, eos)).join() !== theirs.join()) changed = true;
      }
    } finally {
      await model.dispose();
    }
    expect(changed).toBe(true);
  }, 60_000);

  test('logits through onnxruntime equal our model\'s: across two calls carrying the cache, and under left padding', async () => {
    const session = await ort.InferenceSession.create(join(folder, 'onnx', 'model.onnx'));
    const { layers, kvHeads: KV, headDim: D, vocabSize: V } = run.config;
    const emptyPast = (batch: number) => Object.fromEntries([...Array(layers).keys()].flatMap((l) => ['key', 'value'].map((k) => [`past_key_values.${l}.${k}`, new ort.Tensor('float32', new Float32Array(0), [batch, KV, 0, D])])));
    const pastOf = (r: ort.InferenceSession.OnnxValueMapType) => Object.fromEntries(Object.entries(r).filter(([n]) => n.startsWith('present.')).map(([n, t]) => [n.replace('present', 'past_key_values'), t]));
    try {
      const ids = tok.encode('Once upon a time there was');
      const want = await ourLogits(run, ids);
      // Two calls: the first 4 tokens with an empty past, then the rest against the returned cache.
      const first = await session.run({ input_ids: i64(ids.slice(0, 4), [1, 4]), attention_mask: i64([1, 1, 1, 1], [1, 4]), position_ids: i64([0, 1, 2, 3], [1, 4]), ...emptyPast(1) });
      const n = ids.length;
      const rest = ids.slice(4);
      const second = await session.run({
        input_ids: i64(rest, [1, rest.length]), attention_mask: i64(Array(n).fill(1), [1, n]), position_ids: i64(rest.map((_, i) => 4 + i), [1, rest.length]), ...pastOf(first),
      });
      expect(second['present.0.key']!.dims).toEqual([1, KV, n, D]);
      const got = Float32Array.from([...(first.logits!.data as Float32Array), ...(second.logits!.data as Float32Array)]);
      const scale = Math.max(...want.map(Math.abs));
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-5 * scale);

      // A batch of two, the shorter row left-padded as transformers.js pads: its logits are those of the row alone.
      const short = tok.encode('The little dog');
      const pad = n - short.length;
      const batch = await session.run({
        input_ids: i64([...ids, ...Array(pad).fill(0), ...short], [2, n]),
        attention_mask: i64([...Array(n).fill(1), ...Array(pad).fill(0), ...Array(short.length).fill(1)], [2, n]),
        position_ids: i64([...ids.map((_, i) => i), ...Array(pad).fill(1), ...short.map((_, i) => i)], [2, n]),
        ...emptyPast(2),
      });
      const rows = batch.logits!.data as Float32Array;
      expect(maxAbsDiff(rows.subarray(0, n * V), want)).toBeLessThan(1e-5 * scale);
      const alone = await ourLogits(run, short);
      expect(maxAbsDiff(rows.subarray((n + pad) * V, 2 * n * V), alone)).toBeLessThan(1e-5 * scale);
    } finally {
      await session.release();
    }
  }, 30_000);

  test('weights in external data (onnx/model.onnx_data, as large models are written) load and generate the same', async () => {
    const external = join(dir, 'stories-lora-external');
    const result = await exportRunOnnx(runConfig!, loraPlugins(), external, quiet, { externalDataThreshold: 0 });
    expect(result.externalData).toBe(true);
    expect(readdirSync(join(external, 'onnx')).sort()).toEqual(['model.onnx', 'model.onnx_data']);
    expect(JSON.parse(readFileSync(join(external, 'config.json'), 'utf8'))['transformers.js_config']).toEqual({ dtype: 'fp32', use_external_data_format: true });
    const model = await loadTjs(external);
    try {
      expect(await tjsGreedy(model, tok.encode(PROMPTS[0]!), eos)).toEqual(ours.get(PROMPTS[0]!)!);
    } finally {
      await model.dispose();
    }
  }, 30_000);
});

describe.skipIf(missing || archsMissing)('transformers.js export: the other families continue as ours', () => {
  const dir = missing ? '' : tempDir('tjs-families');
  const prompt = [1, 100, 200, 300, 50];

  /** Exports a model folder, then compares transformers.js's greedy continuation with ours. */
  async function check(source: string, name: string, loaded?: { config: ModelConfig; weights: Map<string, HostTensor> }): Promise<void> {
    const { config, weights } = loaded ?? (await loadModel(source));
    const result = await exportModelOnnx(source, join(dir, name));
    const model = await loadTjs(result.dir);
    try {
      const want = await ourGreedy(config, weights, prompt, undefined, config.eosTokenIds);
      expect(await tjsGreedy(model, prompt, config.eosTokenIds)).toEqual(want);
      expect(want.length).toBeGreaterThan(5);
    } finally {
      await model.dispose();
    }
  }

  for (const family of ['qwen3', 'olmo2', 'smollm3', 'gemma2', 'gemma3_text', 'phi3', 'qwen3_moe']) {
    test(family, () => check(join(ARCHS, family), family), 30_000);
  }

  test('the rest of the Llama family: random Qwen2 (q/k/v biases) and Mistral with a 4-token sliding window', async () => {
    const storiesRaw = (await loadModel(STORIES)).config.raw;
    for (const [name, extra] of [
      ['qwen2', { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' }],
      ['mistral', { architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 4 }],
    ] as const) {
      const config = parseConfig({ ...storiesRaw, ...extra });
      const weights = randomWeights(config, 7, 0.35); // peaked logits: greedy picks far from ties
      const folder = join(dir, `${name}-source`);
      await writeModelFolder(folder, config, weights, STORIES);
      await check(folder, name, { config, weights });
      expect(JSON.parse(readFileSync(join(dir, name, 'config.json'), 'utf8')).model_type).toBe(name);
    }
  }, 60_000);
});

describe.skipIf(missing)('transformers.js export refusals', () => {
  const dir = missing ? '' : tempDir('tjs-refuse');

  test('a plugin that cannot be merged (prefix tuning): named, with the adapter export suggested, before loading', async () => {
    const cfg = tinyConfig(writeTinyData(dir), join(dir, 'prefix-run'));
    const err = await exportRunOnnx(cfg, [prefix({ virtualTokens: 4 })], join(dir, 'x'), quiet).catch((e: Error) => e);
    expect(err).toBeInstanceOf(OnnxUnsupportedError);
    expect((err as Error).message).toContain('tuneforge:prefix');
    expect((err as Error).message).toContain('cannot be folded into the base weights');
    expect((err as Error).message).toContain('without --format');
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });

  test.skipIf(archsMissing)('a family transformers.js has no model type for (Mixtral): named, with the reason and the safetensors export', async () => {
    const err = await exportModelOnnx(join(ARCHS, 'mixtral'), join(dir, 'mixtral')).catch((e: Error) => e);
    expect(err).toBeInstanceOf(OnnxUnsupportedError);
    expect((err as Error).message).toMatch(/MixtralForCausalLM.*no mixtral model type.*without --format/);
  });

  test('--quant is refused with onnx', async () => {
    const err = await exportGgufCommand({ format: 'onnx', out: join(dir, 'q'), quant: 'f16', model: STORIES }, quiet).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ExportRefusal);
    expect((err as Error).message).toContain('--quant applies to --format gguf');
  });

  test('the command line: an unknown --format lists onnx among the formats (exit 2); onnx writes the folder (exit 0)', () => {
    const cli = (args: string[]) => spawnSync(process.execPath, ['run', join(REPO, 'cli/main.ts'), ...args], { encoding: 'utf8', cwd: REPO });
    const bad = cli(['export', '--model', STORIES, '--format', 'tflite', '--out', join(dir, 'a')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("unknown --format 'tflite'");
    expect(bad.stderr).toMatch(/\n {2}onnx: the merged model as a transformers.js folder/);
    const out = join(dir, 'stories-onnx');
    const ok = cli(['export', '--model', STORIES, '--format', 'onnx', '--out', out]);
    expect(ok.stderr).toContain('model_type llama');
    expect(ok.status).toBe(0);
    expect(ok.stdout.trim()).toBe(out);
    expect(existsSync(join(out, 'onnx', 'model.onnx'))).toBe(true);
  }, 30_000);
});
