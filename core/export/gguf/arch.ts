/**
 * How a Hugging Face Llama-family model maps onto llama.cpp's architectures: which GGUF architecture, tensor names,
 * the rotary row order of q/k, and the hyper-parameter keys. What llama.cpp cannot take from us is refused here with
 * the reason and what to do instead.
 */
import type { ModelConfig } from '../../models/config.ts';
import { ropeInvFreq } from '../../nn/rope.ts';
import { scaledInvFreq } from '../../models/rope-scaling.ts';
import { f32, str, u32, type GgufMetadata } from './values.ts';

/** The architectures (HF `architectures[0]`) a GGUF can be written for, and the llama.cpp name each becomes. */
export const GGUF_ARCHITECTURES: Readonly<Record<string, 'llama' | 'qwen2'>> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'llama', // llama.cpp's converter writes Mistral as llama too
  Qwen2ForCausalLM: 'qwen2',
};

/** A model (or adapter) this exporter will not write, with what to do instead. */
export class GgufUnsupportedError extends Error {
  override name = 'GgufUnsupportedError';
}

const ALTERNATIVE = 'convert the Hugging Face folder with llama.cpp\'s convert_hf_to_gguf.py (for a run, tuneforge export without --format writes that folder)';

/** Refuses an `architectures[0]` outside {@link GGUF_ARCHITECTURES}; for checking a config.json before loading it. */
export function checkGgufArchitecture(arch: string | undefined, where: string): void {
  if (arch !== undefined && arch in GGUF_ARCHITECTURES) return;
  throw new GgufUnsupportedError(
    `${where}: GGUF export does not support architecture '${arch ?? '(none)'}': tuneforge writes llama.cpp's ` +
      `'llama' layout (${Object.keys(GGUF_ARCHITECTURES).filter((k) => GGUF_ARCHITECTURES[k] === 'llama').join(', ')}) and 'qwen2' (Qwen2ForCausalLM) only; ` +
      `for other models ${ALTERNATIVE}`,
  );
}

export interface GgufArchitecture {
  name: 'llama' | 'qwen2';
  /**
   * llama.cpp's llama graph applies RoPE to adjacent pairs (GGML_ROPE_TYPE_NORM) while HF Llama rotates the two
   * halves of each head (rotate_half), so q/k rows are reordered; qwen2 uses the NEOX (halves) order as HF does.
   */
  permuteQK: boolean;
  /** Things that behave differently in llama.cpp but do not stop the export (printed by the caller). */
  notes: string[];
}

export function ggufArchitecture(c: ModelConfig): GgufArchitecture {
  const hfArch = (c.raw.architectures as string[] | undefined)?.[0] ?? c.architecture;
  checkGgufArchitecture(hfArch, 'config.json');
  const name = GGUF_ARCHITECTURES[hfArch]!;
  const problems: string[] = [];
  if (name === 'qwen2') {
    // llama.cpp's qwen2 graph has q/k/v biases and nothing else (no MLP biases, no rope factors).
    if (c.mlpBias) problems.push('mlp_bias: true (llama.cpp\'s qwen2 graph has no MLP biases)');
    if (c.oBias) problems.push('an o_proj bias (llama.cpp\'s qwen2 graph has none)');
    if (c.ropeScaling.type === 'llama3') problems.push('rope_scaling llama3 (llama.cpp reads rope frequency factors only for llama)');
  }
  if (problems.length) {
    throw new GgufUnsupportedError(`GGUF export of ${hfArch}: llama.cpp cannot run ${problems.join('; ')}; ${ALTERNATIVE} if llama.cpp supports it there, or keep the safetensors export`);
  }
  const notes: string[] = [];
  if (c.slidingWindow !== null && c.slidingWindow < c.maxPositions) {
    notes.push(`sliding_window ${c.slidingWindow}: llama.cpp's ${name} graph attends to the whole context, so outputs differ from the model's beyond ${c.slidingWindow} tokens`);
  }
  return { name, permuteQK: name === 'llama', notes };
}

const LAYER_NAMES: Readonly<Record<string, string>> = {
  'input_layernorm': 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'post_attention_layernorm': 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

/** The GGUF name of a Hugging Face tensor name (`model.layers.3.mlp.up_proj.weight` → `blk.3.ffn_up.weight`). */
export function ggufTensorName(hf: string): string {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  const part = m ? LAYER_NAMES[m[2]!] : undefined;
  if (!m || !part) throw new Error(`gguf: no GGUF name for tensor '${hf}'`);
  return `blk.${m[1]}.${part}.${m[3]}`;
}

/** Which q/k projection a tensor belongs to (for the rotary permutation), with its head count. */
export function rotaryHeads(hf: string, c: ModelConfig): number | null {
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hf)) return c.heads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hf)) return c.kvHeads;
  return null;
}

/**
 * HF rotate_half row order → llama.cpp's interleaved pairs, per head: row h·D + 2j + s takes row h·D + s·D/2 + j
 * (the converter's `reshape(heads, 2, D/2, cols).swapaxes(1, 2)`). `x` is [heads·D, cols] row-major.
 */
export function permuteRotaryRows(x: Float32Array, heads: number, cols: number): Float32Array {
  const rows = x.length / cols;
  const D = rows / heads;
  if (!Number.isInteger(D) || D % 2 !== 0) throw new Error(`gguf: ${rows} rows do not split into ${heads} heads of even size`);
  const out = new Float32Array(x.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < D / 2; j++) {
      for (let s = 0; s < 2; s++) {
        const from = (h * D + s * (D / 2) + j) * cols;
        out.set(x.subarray(from, from + cols), (h * D + 2 * j + s) * cols);
      }
    }
  }
  return out;
}

/** `{arch}.*` hyper-parameters, with the types llama.cpp reads them as (uint32 counts, float32 reals). */
export function architectureMetadata(c: ModelConfig, arch: GgufArchitecture, md: GgufMetadata): void {
  const k = (key: string) => `${arch.name}.${key}`;
  md.set(k('vocab_size'), u32(c.vocabSize));
  md.set(k('context_length'), u32(c.maxPositions));
  md.set(k('embedding_length'), u32(c.hidden));
  md.set(k('block_count'), u32(c.layers));
  md.set(k('feed_forward_length'), u32(c.intermediate));
  md.set(k('attention.head_count'), u32(c.heads));
  md.set(k('attention.head_count_kv'), u32(c.kvHeads));
  md.set(k('rope.freq_base'), f32(c.ropeTheta));
  md.set(k('attention.layer_norm_rms_epsilon'), f32(c.rmsNormEps));
  md.set(k('rope.dimension_count'), u32(c.headDim));
  if (c.headDim * c.heads !== c.hidden) {
    // llama.cpp assumes hidden / heads unless told.
    md.set(k('attention.key_length'), u32(c.headDim));
    md.set(k('attention.value_length'), u32(c.headDim));
  }
  if (c.ropeScaling.type === 'linear') {
    md.set(k('rope.scaling.type'), str('linear'));
    md.set(k('rope.scaling.factor'), f32(c.ropeScaling.factor));
  }
}

/**
 * llama3 rope scaling as llama.cpp takes it: a `rope_freqs.weight` tensor [D/2] by which each base frequency is
 * divided (1 where kept, `factor` where scaled, the interpolation between); null for other scalings.
 */
export function ropeFreqFactors(c: ModelConfig): Float32Array | null {
  if (c.ropeScaling.type !== 'llama3') return null;
  const base = ropeInvFreq(c.headDim, c.ropeTheta);
  const scaled = scaledInvFreq(c);
  return Float32Array.from(base, (f, i) => f / scaled[i]!);
}
