/**
 * A tiny random Llama in a folder of its own, for a plugin author's tests: config.json, model.safetensors (random,
 * seeded) and a byte-level BPE tokenizer with no merges (every byte one token, GPT-2's byte-to-character table),
 * generated here so the kit needs no model download. Small enough that a training step takes milliseconds.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig, randomWeights, writeSafetensors, type RawConfig } from '../core/index.ts';

export interface TinyLlamaOptions {
  /** Width of the residual stream (default 32). */
  hidden?: number;
  /** Decoder layers (default 2). */
  layers?: number;
  /** Attention heads (default 4) and key/value heads (default 2: grouped-query attention, as most models have). */
  heads?: number;
  kvHeads?: number;
  /** MLP width (default 64). */
  intermediate?: number;
  /** Seed of the random weights (default 0). */
  seed?: number;
  /** Tie the LM head to the embeddings (default true). */
  tied?: boolean;
}

const BYTES = 256;
const SPECIALS = ['<|endoftext|>', '<|pad|>'] as const;

/** GPT-2's printable stand-in for each byte, the alphabet of byte-level BPE. */
function byteCharacters(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < BYTES; b++) out.push(String.fromCodePoint(printable(b) ? b : next++));
  return out;
}

function tokenizerJson(): object {
  const vocab: Record<string, number> = {};
  byteCharacters().forEach((c, id) => (vocab[c] = id));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, k) => ({ id: BYTES + k, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
  };
}

/** The config.json of the tiny model (a Hugging Face LlamaForCausalLM config). */
export function tinyLlamaConfig(o: TinyLlamaOptions = {}): RawConfig {
  const hidden = o.hidden ?? 32, heads = o.heads ?? 4;
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama',
    vocab_size: BYTES + SPECIALS.length, hidden_size: hidden, intermediate_size: o.intermediate ?? 64,
    num_hidden_layers: o.layers ?? 2, num_attention_heads: heads, num_key_value_heads: o.kvHeads ?? 2,
    head_dim: hidden / heads, max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000,
    tie_word_embeddings: o.tied ?? true, bos_token_id: BYTES, eos_token_id: BYTES, hidden_act: 'silu', torch_dtype: 'float32',
  } as RawConfig;
}

/** Writes the tiny model into `dir` (created if missing; an existing model there is kept) and returns `dir`. */
export async function writeTinyLlama(dir: string, o: TinyLlamaOptions = {}): Promise<string> {
  if (existsSync(join(dir, 'model.safetensors'))) return dir;
  mkdirSync(dir, { recursive: true });
  const raw = tinyLlamaConfig(o);
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(raw, null, 2)}\n`);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson()));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({
    bos_token: SPECIALS[0], eos_token: SPECIALS[0], pad_token: SPECIALS[1], unk_token: null, add_bos_token: false, add_eos_token: false,
    model_max_length: 256, tokenizer_class: 'PreTrainedTokenizerFast',
  }, null, 2));
  await writeSafetensors(join(dir, 'model.safetensors'), randomWeights(parseConfig(raw), o.seed ?? 0));
  return dir;
}

/** A few dozen short prompt/completion records as JSONL (the kit's training data); returns the file's path. */
export function writeTinyDataset(dir: string, count = 48): string {
  mkdirSync(dir, { recursive: true });
  const animals = ['cat', 'dog', 'bird', 'fox', 'owl', 'bee'];
  const verbs = ['sat down', 'ran home', 'sang a song', 'found a stick', 'went to sleep'];
  const lines = Array.from({ length: count }, (_, i) => JSON.stringify({ prompt: `The ${animals[i % animals.length]}`, completion: ` ${verbs[(i * 7) % verbs.length]}.` }));
  const path = join(dir, 'train.jsonl');
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}
