/**
 * A LoRA adapter as llama.cpp's LoRA GGUF (`general.type = adapter`, `adapter.type = lora`): per adapted weight W
 * (GGUF name N), `N.lora_a` = A [r, in] and `N.lora_b` = B [out, r], PEFT's matrices unchanged in layout (ggml ne
 * [in, r] and [r, out], what llama.cpp checks against W's ne [in, out]). llama.cpp scales every pair by
 * alpha / r_pair with one file-wide alpha, so a module whose own scaling differs (rsLoRA, rank or alpha patterns)
 * has that ratio folded into its B. For the llama layout, B of q/k gets the same rotary row permutation as W.
 */
import type { HostTensor } from '../../ir/host.ts';
import type { ModelConfig } from '../../models/config.ts';
import { ggufArchitecture, ggufTensorName, permuteRotaryRows, rotaryHeads } from './arch.ts';
import { FileType, GGML_QUANT_VERSION, GGUF_ALIGNMENT } from './format.ts';
import type { GgufWriteResult } from './model.ts';
import { encodeTensor } from './quant.ts';
import { f32, str, u32, type GgufMetadata } from './values.ts';
import { writeGguf, type GgufTensor } from './writer.ts';

export interface LoraPair {
  /** The adapted linear layer, Hugging Face name without `.weight` (`model.layers.0.self_attn.q_proj`). */
  module: string;
  /** [r, in] */
  a: HostTensor;
  /** [out, r] */
  b: HostTensor;
  /** What B·A is multiplied by in the model (alpha / r, or alpha / sqrt(r) with rsLoRA). */
  scaling: number;
}

export async function writeGgufLora(path: string, config: ModelConfig, pairs: readonly LoraPair[], options: { name?: string } = {}): Promise<GgufWriteResult> {
  if (pairs.length === 0) throw new Error('gguf-lora: the adapter has no LoRA matrices');
  const arch = ggufArchitecture(config);
  // One alpha for the file: the first pair's effective alpha (scaling · r); the others' B absorb any difference.
  const rank = (p: LoraPair) => p.a.shape[0]!;
  const alpha = pairs[0]!.scaling * rank(pairs[0]!);
  const md: GgufMetadata = new Map();
  md.set('general.architecture', str(arch.name));
  md.set('general.type', str('adapter'));
  md.set('general.name', str(options.name ?? 'tuneforge LoRA adapter'));
  md.set('general.alignment', u32(GGUF_ALIGNMENT));
  md.set('general.file_type', u32(FileType.ALL_F32));
  md.set('general.quantization_version', u32(GGML_QUANT_VERSION));
  md.set('adapter.type', str('lora'));
  md.set('adapter.lora.alpha', f32(alpha));

  const tensors: GgufTensor[] = [];
  for (const p of pairs) {
    const [r, inp] = p.a.shape as [number, number];
    const [out, rb] = p.b.shape as [number, number];
    if (rb !== r) throw new Error(`gguf-lora: ${p.module}: A is [${p.a.shape}] but B is [${p.b.shape}]`);
    const name = ggufTensorName(`${p.module}.weight`);
    const factor = p.scaling / (alpha / r);
    const heads = arch.permuteQK ? rotaryHeads(`${p.module}.weight`, config) : null;
    tensors.push({ name: `${name}.lora_a`, dims: [inp, r], type: 'F32', encode: () => encodeTensor(p.a.data as Float32Array, 'F32') });
    tensors.push({
      name: `${name}.lora_b`, dims: [r, out], type: 'F32',
      encode: () => {
        let b = p.b.data as Float32Array;
        if (Math.abs(factor - 1) > 1e-7) b = Float32Array.from(b, (v) => v * factor);
        if (heads !== null) b = permuteRotaryRows(b, heads, r);
        return encodeTensor(b, 'F32');
      },
    });
  }
  const bytes = await writeGguf(path, md, tensors);
  return { path, bytes, types: { F32: tensors.length }, notes: arch.notes };
}
