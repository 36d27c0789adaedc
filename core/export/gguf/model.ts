/**
 * A whole model as one GGUF file for llama.cpp: architecture and tokenizer metadata, then every weight under its
 * GGUF name, in F32, F16 or Q8_0. As llama.cpp's converter does, norms, biases and other 1-D tensors stay F32, and a
 * matrix whose rows do not split into Q8_0 blocks of 32 falls back to F16. Tied models have no `output` tensor:
 * llama.cpp reuses `token_embd`.
 */
import { basename } from 'node:path';
import type { HostTensor } from '../../ir/host.ts';
import type { ModelConfig } from '../../models/config.ts';
import { paramSpecs } from '../../models/params.ts';
import { architectureMetadata, ggufArchitecture, ggufTensorName, permuteRotaryRows, ropeFreqFactors, rotaryHeads } from './arch.ts';
import { FileType, GGML_QUANT_VERSION, GGUF_ALIGNMENT, Q8_0_BLOCK, type GgmlTypeName } from './format.ts';
import { encodeTensor } from './quant.ts';
import { tokenizerMetadata } from './vocab.ts';
import { str, u32, type GgufMetadata } from './values.ts';
import { writeGguf, type GgufTensor } from './writer.ts';

export const GGUF_QUANTS = ['f32', 'f16', 'q8_0'] as const;
export type GgufQuant = (typeof GGUF_QUANTS)[number];

export interface GgufModelOptions {
  quant?: GgufQuant;
  /** `general.name`; default: the config's `_name_or_path`, else the source folder's name. */
  name?: string;
}

export interface GgufWriteResult {
  path: string;
  bytes: number;
  /** Tensor count by stored type. */
  types: Partial<Record<GgmlTypeName, number>>;
  /** Behaviour that differs in llama.cpp but did not stop the export. */
  notes: string[];
}

/** The stored type of a tensor with ggml dims `dims` under `quant` (the converter's rules). */
export function tensorType(ggufName: string, dims: readonly number[], quant: GgufQuant): GgmlTypeName {
  if (quant === 'f32' || dims.length < 2 || ggufName.endsWith('_norm.weight') || !ggufName.endsWith('.weight')) return 'F32';
  if (quant === 'f16') return 'F16';
  return dims[0]! % Q8_0_BLOCK === 0 ? 'Q8_0' : 'F16';
}

const asFloat32 = (t: HostTensor, name: string): Float32Array => {
  if (t.dtype !== 'float32') throw new Error(`gguf: weight ${name} is ${t.dtype}; pass float32 weights`);
  return t.data as Float32Array;
};

/**
 * Writes `path` from a model's config, its weights (read one at a time, by Hugging Face name, when written) and the
 * tokenizer files in `tokenizerDir`.
 */
export async function writeGgufModel(
  path: string,
  config: ModelConfig,
  read: (hfName: string) => Promise<HostTensor> | HostTensor,
  tokenizerDir: string,
  options: GgufModelOptions = {},
): Promise<GgufWriteResult> {
  const quant = options.quant ?? 'f16';
  const arch = ggufArchitecture(config);
  const md: GgufMetadata = new Map();
  md.set('general.architecture', str(arch.name));
  md.set('general.type', str('model'));
  md.set('general.name', str(options.name ?? (typeof config.raw._name_or_path === 'string' ? config.raw._name_or_path : basename(tokenizerDir))));
  md.set('general.alignment', u32(GGUF_ALIGNMENT));
  architectureMetadata(config, arch, md);
  md.set('general.file_type', u32(quant === 'f32' ? FileType.ALL_F32 : quant === 'f16' ? FileType.MOSTLY_F16 : FileType.MOSTLY_Q8_0));
  md.set('general.quantization_version', u32(GGML_QUANT_VERSION));
  await tokenizerMetadata(tokenizerDir, config, md);

  const tensors: GgufTensor[] = [];
  const types: Partial<Record<GgmlTypeName, number>> = {};
  const add = (name: string, dims: number[], type: GgmlTypeName, values: () => Promise<Float32Array>) => {
    types[type] = (types[type] ?? 0) + 1;
    tensors.push({ name, dims, type, encode: async () => encodeTensor(await values(), type) });
  };
  const freqs = ropeFreqFactors(config);
  if (freqs) add('rope_freqs.weight', [freqs.length], 'F32', async () => freqs);
  for (const spec of paramSpecs(config)) {
    const name = ggufTensorName(spec.name);
    const dims = [...spec.shape].reverse(); // row-major [out, in] is ggml ne = [in, out]
    add(name, dims, tensorType(name, dims, quant), async () => {
      const t = await read(spec.name);
      if (t.shape.join() !== spec.shape.join()) throw new Error(`gguf: ${spec.name} has shape [${t.shape}], expected [${spec.shape}]`);
      const x = asFloat32(t, spec.name);
      const heads = arch.permuteQK ? rotaryHeads(spec.name, config) : null;
      return heads === null ? x : permuteRotaryRows(x, heads, spec.shape.length === 2 ? spec.shape[1]! : 1);
    });
  }
  const bytes = await writeGguf(path, md, tensors);
  return { path, bytes, types, notes: arch.notes };
}
