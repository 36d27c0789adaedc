/**
 * Hugging Face `config.json` for the Llama family, validated with zod. Unsupported architectures and options are
 * refused with the field, the value and what is supported.
 */
import { z } from 'zod';

export const SUPPORTED_ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM'] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

const ropeScaling = z
  .object({
    rope_type: z.string().optional().describe('"default", "linear" or "llama3"'),
    type: z.string().optional().describe('older name of rope_type'),
    factor: z.number().positive().optional().describe('context extension factor'),
    low_freq_factor: z.number().optional().describe('llama3: wavelengths above original/low_freq_factor are scaled by 1/factor'),
    high_freq_factor: z.number().optional().describe('llama3: wavelengths below original/high_freq_factor are kept'),
    original_max_position_embeddings: z.number().int().optional().describe('llama3: context length of pre-training'),
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
    tie_word_embeddings: z.boolean().default(false),
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
  };
  maxPositions: number;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
  /** Keys further back than this are masked (Mistral); null for full causal attention. */
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** The original JSON, for writing back out on export. */
  raw: Record<string, unknown>;
}

/** Validates a config.json object. Every problem is reported at once, with field paths. */
export function parseConfig(json: unknown, source = 'config.json'): ModelConfig {
  const parsed = rawConfigSchema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`${source} is not a valid Llama-family config:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  const problems: string[] = [];
  const arch = c.architectures[0]!;
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    problems.push(`architectures: '${arch}' is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
  }
  if (c.hidden_act !== 'silu') problems.push(`hidden_act: '${c.hidden_act}' is not supported; supported: silu`);
  const kvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % kvHeads !== 0) {
    problems.push(`num_key_value_heads: ${kvHeads} does not divide num_attention_heads ${c.num_attention_heads}`);
  }
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) problems.push(`head_dim: ${headDim} must be an even integer`);

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
    } else {
      problems.push(`rope_scaling: type '${type}' with ${JSON.stringify(rs)} is not supported; supported: default, linear (factor), llama3 (factor, low_freq_factor, high_freq_factor, original_max_position_embeddings)`);
    }
  }
  if (problems.length) throw new Error(`${source}: unsupported model:\n  ${problems.join('\n  ')}`);

  const isQwen2 = arch === 'Qwen2ForCausalLM';
  const slidingWindow = arch === 'MistralForCausalLM' || (isQwen2 && c.use_sliding_window) ? (c.sliding_window ?? null) : null;
  const eos = c.eos_token_id;
  return {
    architecture: arch as Architecture,
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
    qkvBias: isQwen2 ? true : (c.attention_bias ?? false),
    oBias: isQwen2 ? false : (c.attention_bias ?? false),
    mlpBias: c.mlp_bias,
    tieWordEmbeddings: c.tie_word_embeddings,
    slidingWindow,
    bosTokenId: c.bos_token_id ?? null,
    eosTokenIds: eos == null ? [] : Array.isArray(eos) ? eos : [eos],
    raw: json as Record<string, unknown>,
  };
}

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
