/**
 * bench:models — forward and generation throughput of real model shapes on the CPU runner.
 *
 * stories260k: the real weights from ../shared/models/stories260k (skipped, with a note, when absent).
 * smollm2_135m: SmolLM2-135M's configuration with random weights (same shapes and FLOPs as the real model).
 *
 * forward:  logits for a batch × seq block of tokens, weights resident; warm-up, then the median of several runs of
 *           `exe.run` alone (feeds built beforehand). tok/s = batch × seq / seconds.
 * generate: greedy decoding of NEW_TOKENS tokens after a 1-token prompt (no stop tokens), through createGenerator;
 *           the cached path (one token per step against a fixed-size KV cache) and, for stories260k, the uncached
 *           path (full forward pass over the maxLen-padded sequence per token) with the same maxLen.
 *           tok/s = new tokens / seconds of the whole generate() call (median of several).
 *
 *   bun run bench:models
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  compile, parameterCount, parseConfig, randomWeights, SMOLLM2_135M, trace, type HostTensor, type ModelConfig,
} from '../core/index.ts';
import { createGenerator } from '../core/generate/generator.ts';
import { buildCausalLM } from '../core/models/llama.ts';
import { loadModel } from '../core/models/load.ts';

const STORIES = join(import.meta.dir, '../../shared/models/stories260k');
const NEW_TOKENS = 64;
const GEN_MAX_LEN = 128;

async function median(warmup: number, runs: number, fn: () => Promise<number>): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await fn());
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

/** Deterministic token ids in [2, vocab). */
function tokens(n: number, vocab: number): BigInt64Array {
  return BigInt64Array.from({ length: n }, (_, i) => BigInt(2 + ((i * 7919 + 17) % (vocab - 2))));
}

async function forwardTokS(c: ModelConfig, weights: Map<string, HostTensor>, batch: number, seq: number, warmup: number, runs: number): Promise<{ tokS: number; seconds: number; compileS: number }> {
  const graph = trace((g) => ({ logits: buildCausalLM(g, c, { batch, seq }).logits }));
  const t0 = performance.now();
  const exe = await compile(graph, { resident: weights });
  const compileS = (performance.now() - t0) / 1000;
  const feeds = { input_ids: { dtype: 'int64', shape: [batch, seq], data: tokens(batch * seq, c.vocabSize) } as HostTensor };
  let check = 0;
  const seconds = await median(warmup, runs, async () => {
    const t = performance.now();
    const out = await exe.run(feeds);
    const s = (performance.now() - t) / 1000;
    check += (out.logits!.data as Float32Array)[0]!;
    return s;
  });
  await exe.release();
  if (!Number.isFinite(check)) throw new Error('non-finite logits');
  return { tokS: (batch * seq) / seconds, seconds, compileS };
}

async function generateTokS(c: ModelConfig, weights: Map<string, HostTensor>, cache: boolean, warmup: number, runs: number): Promise<{ tokS: number; seconds: number; compileS: number }> {
  const t0 = performance.now();
  const gen = await createGenerator({ config: c, weights, maxLen: GEN_MAX_LEN, cache });
  const compileS = (performance.now() - t0) / 1000;
  const prompt = [c.bosTokenId ?? 1];
  const seconds = await median(warmup, runs, async () => {
    const t = performance.now();
    const out = await gen.generate(prompt, { maxNewTokens: NEW_TOKENS });
    const s = (performance.now() - t) / 1000;
    if (out.length !== NEW_TOKENS) throw new Error(`generated ${out.length} tokens, expected ${NEW_TOKENS}`);
    return s;
  });
  await gen.release();
  return { tokS: NEW_TOKENS / seconds, seconds, compileS };
}

const rows: [string, string, string][] = [];
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const result: Record<string, Record<string, number>> = {};
const started = performance.now();

if (existsSync(join(STORIES, 'model.safetensors'))) {
  const { config, weights } = await loadModel(STORIES);
  const fwd = await forwardTokS(config, weights, 16, 256, 3, 11);
  rows.push(['stories260k', 'forward 16x256 (logits)', `${fmt(fwd.tokS)} tok/s  (${(fwd.seconds * 1000).toFixed(1)} ms/run)`]);
  const gen = await generateTokS(config, weights, true, 2, 7);
  rows.push(['stories260k', `generate greedy, cached, ${NEW_TOKENS} new, maxLen ${GEN_MAX_LEN}`, `${fmt(gen.tokS)} tok/s  (${(1000 / gen.tokS).toFixed(2)} ms/token)`]);
  const plain = await generateTokS(config, weights, false, 1, 5);
  rows.push(['stories260k', `generate greedy, uncached, ${NEW_TOKENS} new, maxLen ${GEN_MAX_LEN}`, `${fmt(plain.tokS)} tok/s  (${(1000 / plain.tokS).toFixed(2)} ms/token)`]);
  result.stories260k = { forward_tok_s: +fwd.tokS.toFixed(1), generate_tok_s: +gen.tokS.toFixed(1), generate_uncached_tok_s: +plain.tokS.toFixed(1) };
} else {
  console.warn(`stories260k skipped: ${STORIES} is absent`);
}

{
  const config = parseConfig(SMOLLM2_135M);
  const weights = randomWeights(config, 0);
  const params = parameterCount(config);
  const b1 = await forwardTokS(config, weights, 1, 256, 2, 9);
  rows.push(['smollm2_135m', `forward 1x256 (logits)  [${(params / 1e6).toFixed(1)}M params, random]`, `${fmt(b1.tokS)} tok/s  (${(b1.seconds * 1000).toFixed(0)} ms/run, compile ${b1.compileS.toFixed(1)} s)`]);
  const b4 = await forwardTokS(config, weights, 4, 256, 2, 7);
  rows.push(['smollm2_135m', 'forward 4x256 (logits)', `${fmt(b4.tokS)} tok/s  (${(b4.seconds * 1000).toFixed(0)} ms/run)`]);
  const gen = await generateTokS(config, weights, true, 1, 5);
  rows.push(['smollm2_135m', `generate greedy, cached, ${NEW_TOKENS} new, maxLen ${GEN_MAX_LEN}`, `${fmt(gen.tokS)} tok/s  (${(1000 / gen.tokS).toFixed(1)} ms/token)`]);
  result.smollm2_135m = { forward_tok_s_b1: +b1.tokS.toFixed(1), forward_tok_s_b4: +b4.tokS.toFixed(1), generate_tok_s: +gen.tokS.toFixed(1) };
}

const w0 = Math.max(...rows.map((r) => r[0].length)), w1 = Math.max(...rows.map((r) => r[1].length));
console.log('bench:models');
for (const [m, what, v] of rows) console.log(`  ${m.padEnd(w0)}  ${what.padEnd(w1)}  ${v}`);
console.log(`  (total ${((performance.now() - started) / 1000).toFixed(0)} s)`);
console.log(JSON.stringify(result));
