/**
 * The `tokenizer.*` metadata of a GGUF from a Hugging Face tokenizer (tokenizer.json, tokenizer_config.json).
 * Two of llama.cpp's tokenizers can reproduce ours: `llama` (SentencePiece-style BPE: ▁ for spaces, byte fallback
 * `<0xXX>` tokens) and `gpt2` (byte-level BPE with merges and a named pre-tokenizer). Anything else is refused.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../../models/config.ts';
import { parseChatTemplates } from '../../tokenizer/chat-template.ts';
import { loadTokenizer } from '../../tokenizer/index.ts';
import { GgufUnsupportedError } from './arch.ts';
import { bool, f32s, i32s, str, strings, u32, type GgufMetadata } from './values.ts';

/** llama.cpp's token types (`llama_token_type`). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

type Json = Record<string, unknown>;
interface AddedToken { id: number; content: string; special?: boolean }

const readJson = async (path: string): Promise<Json | undefined> => (existsSync(path) ? (JSON.parse(await readFile(path, 'utf8')) as Json) : undefined);

/** The components of a (possibly Sequence) normalizer / pre-tokenizer / decoder. */
function parts(node: unknown, listKey: string): Json[] {
  if (!node || typeof node !== 'object') return [];
  const n = node as Json;
  if (n.type === 'Sequence' && Array.isArray(n[listKey])) return (n[listKey] as unknown[]).flatMap((x) => parts(x, listKey));
  return [n];
}

const patternOf = (p: Json): string | undefined => {
  const pat = p.pattern as { Regex?: string; String?: string } | undefined;
  return pat?.Regex ?? pat?.String;
};

/**
 * llama.cpp names its byte-level pre-tokenizers (`tokenizer.ggml.pre`) rather than storing the regex; the
 * tokenizer.json split patterns of the ones recognised here, by what distinguishes them.
 */
function byteLevelPre(tokenizer: Json): string {
  const pre = parts(tokenizer.pre_tokenizer, 'pretokenizers');
  const byteLevel = pre.find((p) => p.type === 'ByteLevel');
  const splits = pre.filter((p) => p.type === 'Split').map(patternOf);
  const digits = pre.find((p) => p.type === 'Digits');
  if (byteLevel?.add_prefix_space === true) {
    throw new GgufUnsupportedError('GGUF export: a ByteLevel pre-tokenizer with add_prefix_space has no llama.cpp equivalent (prompts would tokenize differently)');
  }
  if (pre.length === 1 && byteLevel && byteLevel.use_regex !== false) return 'gpt-2';
  if (digits?.individual_digits === true && byteLevel && byteLevel.use_regex !== false && pre.length === 2) return 'smollm';
  if (splits.length === 1 && byteLevel && byteLevel.use_regex === false) {
    const re = splits[0] ?? '';
    if (re.includes('\\p{N}{1,3}')) return 'llama-bpe'; // Llama 3: numbers in groups of up to three
    if (re.includes('\\p{N}|') || re.endsWith('\\p{N}')) return 'qwen2'; // Qwen2: single digits
  }
  throw new GgufUnsupportedError(
    `GGUF export: the byte-level pre-tokenizer ${JSON.stringify(tokenizer.pre_tokenizer).slice(0, 300)} is not one tuneforge can name for llama.cpp ` +
      '(recognised: GPT-2, SmolLM, Llama 3, Qwen2); convert the exported safetensors folder with llama.cpp\'s convert_hf_to_gguf.py, which knows more',
  );
}

/** `tokenizer.*` keys for the tokenizer files in `dir`, sized to the model's vocabulary. */
export async function tokenizerMetadata(dir: string, config: ModelConfig, md: GgufMetadata): Promise<void> {
  const tokenizer = await readJson(join(dir, 'tokenizer.json'));
  if (!tokenizer) throw new GgufUnsupportedError(`GGUF export: ${dir} has no tokenizer.json; the GGUF must carry the vocabulary`);
  const tokConfig = (await readJson(join(dir, 'tokenizer_config.json'))) ?? {};
  const tok = await loadTokenizer(dir);
  const model = tokenizer.model as Json;
  if (model?.type !== 'BPE') {
    throw new GgufUnsupportedError(`GGUF export: tokenizer model '${String(model?.type)}' is not supported (only BPE tokenizers: SentencePiece-style with byte fallback, or byte-level)`);
  }
  const normalizers = parts(tokenizer.normalizer, 'normalizers');
  const pre = parts(tokenizer.pre_tokenizer, 'pretokenizers');
  const metaspace = pre.find((p) => p.type === 'Metaspace');
  const replacesSpaces = normalizers.some((n) => n.type === 'Replace' && patternOf(n) === ' ' && n.content === '\u2581');
  const spm = model.byte_fallback === true && (replacesSpaces || metaspace !== undefined);
  const byteLevel = [...pre, ...parts(tokenizer.decoder, 'decoders')].some((p) => p.type === 'ByteLevel');
  if (!spm && !byteLevel) {
    throw new GgufUnsupportedError('GGUF export: this BPE tokenizer is neither SentencePiece-style (▁ and byte fallback) nor byte-level, the two llama.cpp reproduces');
  }

  // Tokens by id; ids the tokenizer leaves unused (vocab padded for speed) get placeholders llama.cpp never emits.
  const n = config.vocabSize;
  const tokens: (string | undefined)[] = new Array(n);
  const types = new Int32Array(n).fill(TokenType.NORMAL);
  const vocab = model.vocab as Record<string, number>;
  const added = (tokenizer.added_tokens as AddedToken[] | undefined) ?? [];
  const tooBig = [...Object.values(vocab), ...added.map((a) => a.id)].filter((id) => id >= n);
  if (tooBig.length) throw new GgufUnsupportedError(`GGUF export: the tokenizer has ids up to ${Math.max(...tooBig)} but the model's vocab_size is ${n}`);
  for (const [t, id] of Object.entries(vocab)) tokens[id] = t;
  for (const a of added) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? TokenType.CONTROL : TokenType.USER_DEFINED;
  }
  for (let i = 0; i < n; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TokenType.UNUSED;
    }
  }
  const merges = ((model.merges as (string | [string, string])[] | undefined) ?? []).map((m) => (typeof m === 'string' ? m : m.join(' ')));

  md.set('tokenizer.ggml.model', str(spm ? 'llama' : 'gpt2'));
  if (spm) {
    if (tok.unkId !== null) types[tok.unkId] = TokenType.UNKNOWN;
    for (let i = 0; i < n; i++) if (types[i] === TokenType.NORMAL && /^<0x[0-9A-F]{2}>$/.test(tokens[i]!)) types[i] = TokenType.BYTE;
    // llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined token scores highest; HF BPE applies
    // the lowest-ranked merge. Scoring each token by minus the rank of the first merge producing it makes the two
    // pick the same merges. Tokens no merge produces get a floor so they are merged last.
    const scores = new Float32Array(n).fill(0);
    const rank = new Map<string, number>();
    merges.forEach((m, r) => {
      const joined = m.replace(' ', '');
      if (!rank.has(joined)) rank.set(joined, r);
    });
    for (let i = 0; i < n; i++) {
      const t = tokens[i]!;
      if (types[i] !== TokenType.NORMAL) continue;
      const r = rank.get(t);
      scores[i] = r !== undefined ? -r : [...t].length > 1 ? -1e9 : 0;
    }
    md.set('tokenizer.ggml.tokens', strings(tokens as string[]));
    md.set('tokenizer.ggml.scores', f32s(scores));
    md.set('tokenizer.ggml.token_type', i32s(types));
    // A leading ▁ on the text: the legacy Prepend normalizer, or Metaspace unless its prepend_scheme is 'never'.
    const prepend = normalizers.some((x) => x.type === 'Prepend' && x.prepend === '\u2581') ||
      (metaspace !== undefined && metaspace.prepend_scheme !== 'never' && metaspace.add_prefix_space !== false);
    md.set('tokenizer.ggml.add_space_prefix', bool(prepend));
  } else {
    md.set('tokenizer.ggml.pre', str(byteLevelPre(tokenizer)));
    md.set('tokenizer.ggml.tokens', strings(tokens as string[]));
    md.set('tokenizer.ggml.token_type', i32s(types));
    md.set('tokenizer.ggml.merges', strings(merges));
  }

  // Special tokens and whether prompts get them: what our tokenizer actually does to a text, so llama.cpp agrees.
  const probe = tok.encode('a');
  const eos = tok.eosId ?? config.eosTokenIds[0] ?? null;
  if (tok.bosId !== null) md.set('tokenizer.ggml.bos_token_id', u32(tok.bosId));
  if (eos !== null) md.set('tokenizer.ggml.eos_token_id', u32(eos));
  if (tok.unkId !== null) md.set('tokenizer.ggml.unknown_token_id', u32(tok.unkId));
  if (tok.padSource === 'pad' && tok.padId !== null) md.set('tokenizer.ggml.padding_token_id', u32(tok.padId));
  md.set('tokenizer.ggml.add_bos_token', bool(tok.bosId !== null && probe[0] === tok.bosId));
  md.set('tokenizer.ggml.add_eos_token', bool(eos !== null && probe.length > 1 && probe[probe.length - 1] === eos));

  const jinja = join(dir, 'chat_template.jinja');
  const templates = parseChatTemplates(existsSync(jinja) ? await readFile(jinja, 'utf8') : tokConfig.chat_template);
  const named = [...templates.keys()].filter((k) => k !== 'default');
  const dflt = templates.get('default');
  if (dflt !== undefined) md.set('tokenizer.chat_template', str(dflt));
  for (const name of named) md.set(`tokenizer.chat_template.${name}`, str(templates.get(name)!));
  if (named.length) md.set('tokenizer.chat_templates', strings(named));
}
