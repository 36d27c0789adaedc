/**
 * Autoregressive generation. The cached path compiles one graph that takes a single token, its position and a
 * fixed-size key/value cache (so every step has the same shapes and one compiled session serves the whole run);
 * the uncached path re-runs the full causal forward pass over the sequence so far, as a reference.
 */
import { compile, type Executable } from '../compile.ts';
import { trace, type GraphBuilder } from '../ir/graph.ts';
import type { HostTensor } from '../ir/host.ts';
import type { ModelConfig } from '../models/config.ts';
import { buildCausalLM, type ModelHooks } from '../models/llama.ts';
import { decodingSchema, pickToken, seededRandom, type DecodingOptions } from './sampling.ts';
import type { Runner } from '../../runners/types.ts';

export interface GeneratorOptions {
  config: ModelConfig;
  /** Weights baked into the session (frozen): base model and any adapters. */
  weights: ReadonlyMap<string, HostTensor>;
  /** Model hooks (e.g. an adapter); built inside the generator's graph. */
  hooks?: (g: GraphBuilder) => ModelHooks;
  /** Longest sequence (prompt + generated) the cache holds. Default: min(config.maxPositions, 512). */
  maxLen?: number;
  /** Reference mode: no cache, full forward pass per token. */
  cache?: boolean;
  /** Where the session runs (compile's default, onnxruntime-node, when absent; a browser page passes ortWebRunner). */
  runner?: Runner;
}

export interface Generator {
  readonly maxLen: number;
  /** Positions before the prompt that the model's hooks take (prefix slots, a soft prompt): the prompt gets maxLen − lead. */
  readonly lead: number;
  /** Generates after `prompt` (token ids, BOS included if wanted); returns the new tokens only. */
  generate(prompt: readonly number[], options?: DecodingOptions, onToken?: (id: number) => void): Promise<number[]>;
  release(): Promise<void>;
}

const ids1 = (values: readonly number[], shape: number[]): HostTensor => ({ dtype: 'int64', shape, data: BigInt64Array.from(values, BigInt) });

export async function createGenerator(opts: GeneratorOptions): Promise<Generator> {
  const c = opts.config;
  const maxLen = opts.maxLen ?? Math.min(c.maxPositions, 512);
  const cached = opts.cache ?? true;
  let lead = 0; // positions before the prompt: prefix slots and soft-prompt rows (see TokenEmbeddings.lead)
  const graph = trace((g) => {
    const m = buildCausalLM(g, c, { batch: 1, seq: cached ? 1 : maxLen, hooks: opts.hooks?.(g), cache: cached ? { maxLen } : undefined });
    lead = m.lead;
    return { logits: m.logits, ...m.cacheOut };
  });
  const exe: Executable = await compile(graph, { resident: opts.weights, runner: opts.runner });
  const V = c.vocabSize;

  async function generate(prompt: readonly number[], options: DecodingOptions = {}, onToken?: (id: number) => void): Promise<number[]> {
    const d = decodingSchema.parse(options);
    if (prompt.length === 0) throw new Error('generate: the prompt must hold at least one token (e.g. BOS)');
    if (lead + prompt.length >= maxLen) {
      throw new Error(`generate: prompt of ${prompt.length} tokens${lead ? ` after ${lead} virtual positions` : ''} leaves no room in a ${maxLen}-token context`);
    }
    const random = seededRandom(d.seed);
    const tokens = [...prompt];
    const out: number[] = [];
    const cache: Record<string, HostTensor> = {};
    if (cached) {
      const shape = [1, c.kvHeads, maxLen, c.headDim];
      for (let i = 0; i < c.layers; i++) {
        cache[`past.k.${i}`] = { dtype: 'float32', shape, data: new Float32Array(shape.reduce((a, b) => a * b)) };
        cache[`past.v.${i}`] = { dtype: 'float32', shape, data: new Float32Array(shape.reduce((a, b) => a * b)) };
      }
    }
    let fed = -lead; // tokens already in the cache; the virtual positions before the prompt come first
    while (out.length < d.maxNewTokens && lead + tokens.length < maxLen) {
      let row: Float32Array;
      if (cached) {
        // Feed every token not yet cached (the prompt on the first step), keep the logits of the last one. At the
        // virtual positions the token is a placeholder the model's hooks replace (soft prompt) or ignore (prefix).
        let logits: HostTensor | undefined;
        for (; fed < tokens.length; fed++) {
          const r = await exe.run({ input_ids: ids1([fed < 0 ? 0 : tokens[fed]!], [1, 1]), position: ids1([lead + fed], [1]), ...cache });
          for (const k of Object.keys(cache)) cache[k] = r[k.replace('past.', 'present.')]!;
          logits = r.logits;
        }
        row = logits!.data as Float32Array;
      } else {
        const padded = [...tokens, ...new Array<number>(maxLen - tokens.length).fill(0)]; // virtual rows come on top
        const r = await exe.run({ input_ids: ids1(padded, [1, maxLen]) });
        const at = tokens.length - 1;
        row = (r.logits!.data as Float32Array).subarray(at * V, (at + 1) * V);
      }
      const next = pickToken(row, d, random);
      if (d.stopTokens.includes(next)) break;
      tokens.push(next);
      out.push(next);
      onToken?.(next);
    }
    return out;
  }

  return { maxLen, lead, generate, release: () => exe.release() };
}
