/**
 * Hugging Face `config.json` for the supported decoder families, validated with zod. Unsupported architectures and
 * options are refused with the field, the value and what is supported. What a family changes relative to Llama is
 * resolved into `ModelConfig.family` (core/models/family.ts).
 */
import { z } from 'zod';
import { gemma3TextConfig, llamaFamily, resolveFamily, type FamilySpec } from './family.ts';

export const SUPPORTED_ARCHITECTURES = [
  'LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'Olmo2ForCausalLM', 'SmolLM3ForCausalLM',
  'Gemma2ForCausalLM', 'Gemma3ForCausalLM', 'Gemma3ForConditionalGeneration', 'Phi3ForCausalLM', 'MixtralForCausalLM',
  'Qwen3MoeForCausalLM',
] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];
const LLAMA_ARCHITECTURES: readonly string[] = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM'];

const ropeScaling = z
  .object({
    rope_type: z.string().optional().describe('"default", "linear" or "llama3"'),
    type: z.string().optional().describe('older name of rope_type'),
    factor: z.number().positive().optional().describe('context extension factor'),
    low_freq_factor: z.number().optional().describe('llama3: wavelengths above original/low_freq_factor are scaled by 1/factor'),
    high_freq_factor: z.number().optional().describe('llama3: wavelengths below original/high_freq_factor are kept'),
    original_max_position_embeddings: z.number().int().optional().describe('llama3: context length of pre-training'),
    short_factor: z.array(z.number().positive()).optional().describe('longrope: per-frequency divisors up to original_max_position_embeddings'),
    long_factor: z.array(z.number().positive()).optional().describe('longrope: per-frequency divisors beyond it'),
    attention_factor: z.number().positive().optional().describe('longrope: cos/sin multiplier (default sqrt(1 + ln(factor) / ln(original)))'),
  })
  .passthrough()
  .nullable()
  .optional();

export const rawConfigSchema = z
  .object({
    architectures: z.array(z.string()).min(1).describe('model class; one of ' + SUPPORTED_ARCHITECTURES.join(', ')),
    model_type: z.string().optional(),
    vocab_size: z.number().int().positive(),
    hidden_size: z.number().int().positive(),
    intermediate_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    num_key_value_heads: z.number().int().positive().optional(),
    head_dim: z.number().int().positive().nullable().optional(),
    hidden_act: z.string().default('silu'),
    max_position_embeddings: z.number().int().positive().default(2048),
    rms_norm_eps: z.number().positive().default(1e-6),
    rope_theta: z.number().positive().default(10000),
    rope_scaling: ropeScaling,
    attention_bias: z.boolean().optional(),
    mlp_bias: z.boolean().default(false),
    tie_word_embeddings: z.boolean().optional().describe('default: true for Gemma 2 and Gemma 3 (their config classes tie), else false'),
    sliding_window: z.number().int().positive().nullable().optional(),
    use_sliding_window: z.boolean().optional(),
    bos_token_id: z.number().int().nullable().optional(),
    eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullable().optional(),
    pad_token_id: z.number().int().nullable().optional(),
    torch_dtype: z.string().optional(),
  })
  .passthrough();

export type RawConfig = z.input<typeof rawConfigSchema>;

/** The resolved configuration every builder works from (defaults applied, derived sizes filled in). */
export interface ModelConfig {
  architecture: Architecture;
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: { type: 'default' } | { type: 'linear'; factor: number } | {
    type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number;
  } | {
    /** Phi-3 / Phi-4 LongRoPE: frequencies divided by short or long factors, chosen by the longest position in a pass. */
    type: 'longrope'; shortFactor: number[]; longFactor: number[]; originalMaxPositions: number; attentionFactor: number;
  };
  maxPositions: number;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
  /**
   * Keys further back than this are masked (Mistral: every layer); null for full causal attention. Families with
   * sliding and full layers (Gemma) give the window here and which layers use it in `family.layers`.
   */
  slidingWindow: number | null;
  /** What the family changes relative to Llama (norms, MLP kind, attention extras, RoPE and window per layer). */
  family: FamilySpec;
  /** The text model of a multimodal checkpoint: tensors sit under `model.language_model.` or `language_model.`. */
  wrappedCheckpoint: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** The original JSON, for writing back out on export. */
  raw: Record<string, unknown>;
}

/**
 * transformers ≥ 5 writes RoPE settings as `rope_parameters` (rope_theta inside; Gemma 3: one entry per layer type);
 * older configs as `rope_theta` + `rope_scaling`. Both read the same.
 */
function normaliseRope(json: Record<string, unknown>): Record<string, unknown> {
  const rp = json.rope_parameters;
  if (!rp || typeof rp !== 'object') return json;
  const params = rp as Record<string, unknown>;
  const perType = params.full_attention && typeof params.full_attention === 'object';
  const full = (perType ? params.full_attention : params) as Record<string, unknown>;
  const { rope_theta, ...scaling } = full;
  const out: Record<string, unknown> = { ...json, rope_scaling: scaling };
  if (typeof rope_theta === 'number') out.rope_theta = rope_theta;
  const local = perType ? (params.sliding_attention as Record<string, unknown> | undefined) : undefined;
  if (local && typeof local.rope_theta === 'number') out.rope_local_base_freq = local.rope_theta;
  return out;
}

/** Validates a config.json object. Every problem is reported at once, with field paths. */
export function parseConfig(json: unknown, source = 'config.json'): ModelConfig {
  let input = json;
  const outer = json && typeof json === 'object' ? (json as Record<string, unknown>) : undefined;
  const wrappedCheckpoint = Array.isArray(outer?.architectures) && outer.architectures[0] === 'Gemma3ForConditionalGeneration';
  if (wrappedCheckpoint) input = gemma3TextConfig(outer!);
  if (input && typeof input === 'object') input = normaliseRope(input as Record<string, unknown>);
  const parsed = rawConfigSchema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`${source} is not a valid config for a supported decoder family:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  const problems: string[] = [];
  const arch = c.architectures[0]!;
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    problems.push(`architectures: '${arch}' is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
  }
  const kvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % kvHeads !== 0) {
    problems.push(`num_key_value_heads: ${kvHeads} does not divide num_attention_heads ${c.num_attention_heads}`);
  }
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) problems.push(`head_dim: ${headDim} must be an even integer`);

  // Llama, Mistral and Qwen2 (and unknown architectures, for their other problems) are checked as Llama.
  const checkedAsLlama = LLAMA_ARCHITECTURES.includes(arch) || !(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch);
  const family = checkedAsLlama ? null : resolveFamily(arch, c, headDim, problems);
  if (checkedAsLlama && c.hidden_act !== 'silu') problems.push(`hidden_act: '${c.hidden_act}' is not supported; supported: silu`);
  const rotaryDim = family?.rotaryDim ?? headDim;

  let ropeScaling: ModelConfig['ropeScaling'] = { type: 'default' };
  const rs = c.rope_scaling;
  if (rs) {
    const type = rs.rope_type ?? rs.type ?? 'default';
    if (type === 'default') ropeScaling = { type: 'default' };
    else if (type === 'linear' && rs.factor) ropeScaling = { type: 'linear', factor: rs.factor };
    else if (type === 'llama3' && rs.factor && rs.low_freq_factor && rs.high_freq_factor && rs.original_max_position_embeddings) {
      ropeScaling = {
        type: 'llama3', factor: rs.factor, lowFreqFactor: rs.low_freq_factor, highFreqFactor: rs.high_freq_factor,
        originalMaxPositions: rs.original_max_position_embeddings,
      };
    } else if ((type === 'longrope' || type === 'su') && rs.short_factor && rs.long_factor) { // 'su': early Phi-3 spelling
      // transformers' _compute_longrope_parameters: a top-level original_max_position_embeddings (Phi-3) fixes the
      // factor as max_position_embeddings / original; the attention factor defaults to sqrt(1 + ln f / ln original).
      const topOriginal = (c as Record<string, unknown>).original_max_position_embeddings;
      const original = typeof topOriginal === 'number' ? topOriginal : (rs.original_max_position_embeddings ?? c.max_position_embeddings);
      const factor = typeof topOriginal === 'number' ? c.max_position_embeddings / topOriginal : (rs.factor ?? 1);
      const attentionFactor = rs.attention_factor ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original)));
      for (const [k, v] of [['short_factor', rs.short_factor], ['long_factor', rs.long_factor]] as const) {
        if (v.length !== rotaryDim / 2) problems.push(`rope_scaling.${k}: ${v.length} entries, expected ${rotaryDim / 2} (rotary dims / 2)`);
      }
      ropeScaling = { type: 'longrope', shortFactor: rs.short_factor, longFactor: rs.long_factor, originalMaxPositions: original, attentionFactor };
    } else {
      problems.push(`rope_scaling: type '${type}' with ${JSON.stringify(rs)} is not supported; supported: default, linear (factor), llama3 (factor, low_freq_factor, high_freq_factor, original_max_position_embeddings), longrope (short_factor, long_factor)`);
    }
  }
  if (problems.length) throw new Error(`${source}: unsupported model:\n  ${problems.join('\n  ')}`);

  const isQwen2 = arch === 'Qwen2ForCausalLM';
  const llamaWindow = arch === 'MistralForCausalLM' || (isQwen2 && c.use_sliding_window) ? (c.sliding_window ?? null) : null;
  const spec = family ?? llamaFamily(c.num_hidden_layers, headDim, llamaWindow);
  const windows = spec.layers.flatMap((l) => (l.slidingWindow ? [l.slidingWindow] : []));
  const slidingWindow = windows.length ? Math.max(...windows) : null;
  // Only the Llama family has configurable MLP biases; Phi-3 has no attention biases whatever the config says.
  const attentionBias = spec.name === 'phi3' ? false : (c.attention_bias ?? false);
  const eos = c.eos_token_id;
  return {
    architecture: (wrappedCheckpoint ? 'Gemma3ForConditionalGeneration' : arch) as Architecture,
    vocabSize: c.vocab_size,
    hidden: c.hidden_size,
    intermediate: c.intermediate_size,
    layers: c.num_hidden_layers,
    heads: c.num_attention_heads,
    kvHeads,
    headDim,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    ropeScaling,
    maxPositions: c.max_position_embeddings,
    // Qwen2 always has q/k/v biases and no o_proj bias; Llama/Mistral follow attention_bias.
    qkvBias: isQwen2 ? true : attentionBias,
    oBias: isQwen2 ? false : attentionBias,
    mlpBias: spec.name === 'llama' || spec.name === 'smollm3' ? c.mlp_bias : false,
    // Gemma2Config and Gemma3TextConfig default to tied embeddings, and their checkpoints (gemma-3-270m) omit the key.
    tieWordEmbeddings: c.tie_word_embeddings ?? (spec.name === 'gemma2' || spec.name === 'gemma3'),
    slidingWindow,
    family: spec,
    wrappedCheckpoint,
    bosTokenId: c.bos_token_id ?? null,
    eosTokenIds: eos == null ? [] : Array.isArray(eos) ? eos : [eos],
    // A multimodal checkpoint's text model is written back out as the Gemma3ForCausalLM it was read as.
    raw: (wrappedCheckpoint ? input : json) as Record<string, unknown>,
  };
}

/**
 * A 1B-parameter Llama shape: TinyLlama-1.1B's configuration (22 layers, hidden 2048, grouped-query attention with
 * 4 key/value heads, 32,000-token vocabulary, untied embeddings; 1,100,048,384 parameters).
 */
export const TINYLLAMA_1_1B: RawConfig = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 32000,
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: 22,
  num_attention_heads: 32,
  num_key_value_heads: 4,
  hidden_act: 'silu',
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
};

/** The SmolLM2-135M configuration (for building randomly initialised models at a real shape). */
export const SMOLLM2_135M: RawConfig = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  hidden_act: 'silu',
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  tie_word_embeddings: true,
  bos_token_id: 0,
  eos_token_id: 0,
};
