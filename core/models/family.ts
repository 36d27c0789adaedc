/**
 * What each supported decoder family does differently from Llama, as data. One shared decoder (`buildCausalLM`) and
 * one naming function (`paramSpecs`) read a `FamilySpec`, so a family is a handful of named switches plus a small
 * config reader here, not a copy of the decoder. Semantics follow Hugging Face transformers' modeling files.
 */
import { z } from 'zod';

export type FamilyName = 'llama' | 'qwen3' | 'olmo2' | 'smollm3' | 'gemma2' | 'gemma3' | 'phi3' | 'mixtral' | 'qwen3_moe';

/** Per decoder layer. */
export interface LayerSpec {
  /**
   * Rotary table: 'global' (rope_theta with rope_scaling), 'local' (Gemma 3's sliding layers: rope_local_base_freq,
   * unscaled), or null (no rotary embedding: SmolLM3's NoPE layers).
   */
  rope: 'global' | 'local' | null;
  /** Keys at distance ≥ window from the query are masked (i − window < j ≤ i visible); null: full causal. */
  slidingWindow: number | null;
  /** A mixture-of-experts block (true) or the dense MLP. */
  moe: boolean;
}

export interface MoeSpec {
  /** Parameter naming: Mixtral's `block_sparse_moe.{gate, experts.N.w1/w3/w2}` or Qwen3-MoE's `mlp.{gate, experts.N.gate_proj/up_proj/down_proj}`. */
  naming: 'mixtral' | 'qwen3_moe';
  experts: number;
  topK: number;
  /** Hidden size of one expert. */
  intermediate: number;
  /** Top-k weights divided by their sum (Mixtral always; Qwen3-MoE when norm_topk_prob). */
  renormalize: boolean;
  /** `router_aux_loss_coef` when `output_router_logits` is true (the loss then includes it), else null. */
  auxLossCoef: number | null;
}

export interface FamilySpec {
  name: FamilyName;
  /** Embedding rows × √hidden before the first layer (Gemma). */
  embedScale: boolean;
  /** RMSNorm scales by (1 + w) instead of w (Gemma; its norm weights are stored as offsets from 1). */
  normPlusOne: boolean;
  /**
   * Where a block's norms sit.
   * 'pre' (Llama): x += attn(norm(x)); x += mlp(norm(x)).
   * 'sandwich' (Gemma): x += norm(attn(norm(x))); x += norm(mlp(norm(x))).
   * 'post' (OLMo 2): x += norm(attn(x)); x += norm(mlp(x)).
   */
  blockNorms: 'pre' | 'sandwich' | 'post';
  /** RMSNorm of q and k: per head over head_dim after the split (Qwen3, Gemma 3), over the whole projection before it (OLMo 2). */
  qkNorm: 'none' | 'head' | 'projection';
  /** One `qkv_proj` (q, k, v along the output) and one `gate_up_proj` (gate first) instead of separate layers (Phi-3). */
  fused: boolean;
  /** Gated-MLP activation: SwiGLU or GeGLU with tanh-approximated GELU. */
  activation: 'silu' | 'gelu_tanh';
  /** Multiplier of q·k; null: 1/√head_dim. Gemma: query_pre_attn_scalar^-0.5. */
  attnScale: number | null;
  /** Attention scores become c·tanh(s/c) before the mask (Gemma 2). */
  attnSoftcap: number | null;
  /** Logits become c·tanh(z/c) (Gemma 2). */
  finalSoftcap: number | null;
  /** Leading dims of each head that rotate (Phi-3's partial_rotary_factor · head_dim); the rest pass through. */
  rotaryDim: number;
  /** Base of the 'local' rotary table (Gemma 3's rope_local_base_freq). */
  localRopeTheta: number | null;
  layers: LayerSpec[];
  moe: MoeSpec | null;
}

/** Fields of config.json that families read beyond Llama's; all optional, defaults as in transformers' config classes. */
const familyFields = z
  .object({
    layer_types: z.array(z.enum(['full_attention', 'sliding_attention'])).optional(),
    max_window_layers: z.number().int().nonnegative().optional(),
    no_rope_layers: z.array(z.number().int().min(0).max(1)).optional(),
    no_rope_layer_interval: z.number().int().positive().optional(),
    query_pre_attn_scalar: z.number().positive().optional(),
    attn_logit_softcapping: z.number().positive().nullable().optional(),
    final_logit_softcapping: z.number().positive().nullable().optional(),
    rope_local_base_freq: z.number().positive().optional(),
    sliding_window_pattern: z.number().int().positive().optional(),
    hidden_activation: z.string().nullable().optional(),
    partial_rotary_factor: z.number().positive().max(1).optional(),
    num_local_experts: z.number().int().positive().optional(),
    num_experts: z.number().int().positive().optional(),
    num_experts_per_tok: z.number().int().positive().optional(),
    moe_intermediate_size: z.number().int().positive().optional(),
    norm_topk_prob: z.boolean().optional(),
    decoder_sparse_step: z.number().int().positive().optional(),
    mlp_only_layers: z.array(z.number().int().nonnegative()).optional(),
    output_router_logits: z.boolean().optional(),
    router_aux_loss_coef: z.number().nonnegative().optional(),
  })
  .passthrough();

/** The Llama-family config fields a family reader needs (already validated by `rawConfigSchema`). */
export interface BaseFields {
  hidden_act: string;
  sliding_window?: number | null;
  use_sliding_window?: boolean;
  num_hidden_layers: number;
  intermediate_size: number;
}

/** Llama, Mistral and Qwen2: every switch off; Mistral's (and Qwen2's) window, if any, on every layer. */
export function llamaFamily(layers: number, headDim: number, slidingWindow: number | null): FamilySpec {
  return {
    name: 'llama', embedScale: false, normPlusOne: false, blockNorms: 'pre', qkNorm: 'none', fused: false, activation: 'silu',
    attnScale: null, attnSoftcap: null, finalSoftcap: null, rotaryDim: headDim, localRopeTheta: null, moe: null,
    layers: Array.from({ length: layers }, () => ({ rope: 'global' as const, slidingWindow, moe: false })),
  };
}

/**
 * The family of a non-Llama architecture, read from config.json. `problems` collects what is unsupported; the
 * returned spec is only used when it stays empty.
 */
export function resolveFamily(
  arch: string, raw: BaseFields & Record<string, unknown>, headDim: number, problems: string[],
): FamilySpec | null {
  const parsed = familyFields.safeParse(raw);
  if (!parsed.success) {
    for (const i of parsed.error.issues) problems.push(`${i.path.join('.')}: ${i.message}`);
    return null;
  }
  const f = parsed.data;
  const L = raw.num_hidden_layers;
  const base = llamaFamily(L, headDim, null);
  const act = f.hidden_activation ?? raw.hidden_act;
  const requireAct = (supported: string) => {
    if (act !== supported) problems.push(`hidden_act: '${act}' is not supported for ${arch}; supported: ${supported}`);
  };
  // Which layers slide: `layer_types` when given (transformers ≥ 4.53 writes it), else the family's older rule.
  const windows = (legacy: (i: number) => boolean, window: number | null): (number | null)[] => {
    if (f.layer_types && f.layer_types.length !== L) problems.push(`layer_types: ${f.layer_types.length} entries for ${L} layers`);
    return Array.from({ length: L }, (_, i) => {
      const sliding = f.layer_types ? f.layer_types[i] === 'sliding_attention' : legacy(i);
      return sliding && window ? window : null;
    });
  };
  // Qwen3 / SmolLM3 / Qwen3-MoE: a window only with use_sliding_window, on layers from max_window_layers on.
  const qwenWindows = () => windows((i) => i >= (f.max_window_layers ?? 28), raw.use_sliding_window ? (raw.sliding_window ?? null) : null);
  const withWindows = (spec: FamilySpec, w: (number | null)[]): FamilySpec => ({
    ...spec, layers: spec.layers.map((l, i) => ({ ...l, slidingWindow: w[i] ?? null })),
  });

  switch (arch) {
    case 'Qwen3ForCausalLM':
      requireAct('silu');
      return withWindows({ ...base, name: 'qwen3', qkNorm: 'head' }, qwenWindows());
    case 'Olmo2ForCausalLM':
      requireAct('silu');
      return { ...base, name: 'olmo2', blockNorms: 'post', qkNorm: 'projection' };
    case 'SmolLM3ForCausalLM': {
      requireAct('silu');
      // no_rope_layers[i] = 1 keeps RoPE on layer i; the default drops it on every `no_rope_layer_interval`-th layer.
      const interval = f.no_rope_layer_interval ?? 4;
      const useRope = f.no_rope_layers ?? Array.from({ length: L }, (_, i) => ((i + 1) % interval !== 0 ? 1 : 0));
      if (useRope.length !== L) problems.push(`no_rope_layers: ${useRope.length} entries for ${L} layers`);
      const spec = withWindows({ ...base, name: 'smollm3' }, qwenWindows());
      return { ...spec, layers: spec.layers.map((l, i) => ({ ...l, rope: useRope[i] === 0 ? null : 'global' })) };
    }
    case 'Gemma2ForCausalLM': {
      requireAct('gelu_pytorch_tanh');
      const window = raw.sliding_window === undefined ? 4096 : raw.sliding_window;
      const spec: FamilySpec = {
        ...base, name: 'gemma2', embedScale: true, normPlusOne: true, blockNorms: 'sandwich', activation: 'gelu_tanh',
        attnScale: (f.query_pre_attn_scalar ?? 256) ** -0.5,
        attnSoftcap: f.attn_logit_softcapping === undefined ? 50 : f.attn_logit_softcapping,
        finalSoftcap: f.final_logit_softcapping === undefined ? 30 : f.final_logit_softcapping,
      };
      return withWindows(spec, windows((i) => i % 2 === 0, window)); // older configs: even layers slide
    }
    case 'Gemma3ForCausalLM': {
      requireAct('gelu_pytorch_tanh');
      const window = raw.sliding_window === undefined ? 4096 : raw.sliding_window;
      const pattern = f.sliding_window_pattern ?? 6; // older configs: every pattern-th layer is global
      const spec: FamilySpec = {
        ...base, name: 'gemma3', embedScale: true, normPlusOne: true, blockNorms: 'sandwich', qkNorm: 'head', activation: 'gelu_tanh',
        attnScale: (f.query_pre_attn_scalar ?? 256) ** -0.5,
        attnSoftcap: f.attn_logit_softcapping ?? null, finalSoftcap: f.final_logit_softcapping ?? null,
        localRopeTheta: f.rope_local_base_freq ?? 10000,
      };
      const w = windows((i) => (i + 1) % pattern !== 0, window);
      // Sliding layers rotate with the local base, global layers with rope_theta (and rope_scaling).
      return { ...spec, layers: spec.layers.map((l, i) => ({ ...l, slidingWindow: w[i] ?? null, rope: w[i] ? 'local' : 'global' })) };
    }
    case 'Phi3ForCausalLM': {
      requireAct('silu');
      const rotaryDim = Math.floor(headDim * (f.partial_rotary_factor ?? 1));
      if (rotaryDim % 2 !== 0 || rotaryDim === 0) problems.push(`partial_rotary_factor: ${f.partial_rotary_factor} gives ${rotaryDim} rotary dims; it must be a positive even number`);
      // Phi-3 applies config.sliding_window to every layer (Phi-3-mini-4k: 2047).
      return withWindows({ ...base, name: 'phi3', fused: true, rotaryDim }, Array(L).fill(raw.sliding_window ?? null));
    }
    case 'MixtralForCausalLM': {
      requireAct('silu');
      const experts = f.num_local_experts ?? 8, topK = f.num_experts_per_tok ?? 2;
      if (topK > experts) problems.push(`num_experts_per_tok: ${topK} exceeds num_local_experts ${experts}`);
      const spec: FamilySpec = {
        ...base, name: 'mixtral',
        moe: { naming: 'mixtral', experts, topK, intermediate: raw.intermediate_size, renormalize: true, auxLossCoef: f.output_router_logits ? (f.router_aux_loss_coef ?? 0.001) : null },
        layers: base.layers.map((l) => ({ ...l, moe: true })),
      };
      return withWindows(spec, Array(L).fill(raw.sliding_window ?? null));
    }
    case 'Qwen3MoeForCausalLM': {
      requireAct('silu');
      const experts = f.num_experts ?? 128, topK = f.num_experts_per_tok ?? 8, step = f.decoder_sparse_step ?? 1;
      if (topK > experts) problems.push(`num_experts_per_tok: ${topK} exceeds num_experts ${experts}`);
      const dense = new Set(f.mlp_only_layers ?? []);
      const spec: FamilySpec = {
        ...base, name: 'qwen3_moe', qkNorm: 'head',
        moe: {
          naming: 'qwen3_moe', experts, topK, intermediate: f.moe_intermediate_size ?? 768, renormalize: f.norm_topk_prob ?? false,
          auxLossCoef: f.output_router_logits ? (f.router_aux_loss_coef ?? 0.001) : null,
        },
        // A layer is sparse unless listed in mlp_only_layers, and then only every decoder_sparse_step-th layer.
        layers: base.layers.map((l, i) => ({ ...l, moe: !dense.has(i) && (i + 1) % step === 0 })),
      };
      return withWindows(spec, qwenWindows());
    }
    default:
      return null;
  }
}

/**
 * Gemma 3 multimodal checkpoints (`Gemma3ForConditionalGeneration`) hold the text model's config under
 * `text_config` (often only the fields that differ from `Gemma3TextConfig`'s defaults) and its weights under
 * `language_model.model.*` (older) or `model.language_model.*` (transformers ≥ 4.52). The text part is read as a
 * `Gemma3ForCausalLM`; the vision tower and projector are not loaded.
 */
export function gemma3TextConfig(json: Record<string, unknown>): Record<string, unknown> {
  const text = (json.text_config ?? {}) as Record<string, unknown>;
  const defaults = {
    vocab_size: 262208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
    num_key_value_heads: 4, head_dim: 256, hidden_activation: 'gelu_pytorch_tanh', max_position_embeddings: 131072,
    rms_norm_eps: 1e-6, rope_theta: 1_000_000, query_pre_attn_scalar: 256, sliding_window: 4096, rope_local_base_freq: 10000,
    sliding_window_pattern: 6, attn_logit_softcapping: null, final_logit_softcapping: null, tie_word_embeddings: true,
  };
  return {
    ...defaults, ...text, hidden_act: text.hidden_activation ?? text.hidden_act ?? defaults.hidden_activation,
    architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text',
    bos_token_id: text.bos_token_id ?? json.bos_token_id ?? 2, eos_token_id: text.eos_token_id ?? json.eos_token_id ?? 1,
    pad_token_id: text.pad_token_id ?? json.pad_token_id ?? 0,
  };
}

/** Where a text-model tensor may sit in a checkpoint: its own name first, then the multimodal wrappers' names. */
export function checkpointNames(name: string, wrapped: boolean): string[] {
  if (!wrapped) return [name];
  const inner = name.replace(/^model\./, '');
  return name.startsWith('model.')
    ? [`model.language_model.${inner}`, `language_model.model.${inner}`, name]
    : [`language_model.${name}`, name];
}
