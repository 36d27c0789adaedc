/**
 * Which architectures the transformers.js export writes, as which transformers.js model type. The decoder itself is
 * ours for every family (the ONNX graph holds all of the computation), so what decides is whether transformers.js
 * 4.3 knows the model type as a causal LM with one key/value pair per layer, and how it feeds positions.
 */
import type { Architecture, ModelConfig } from '../../models/config.ts';

export interface TransformersJsTarget {
  /** `model_type` written to config.json: selects transformers.js's model class and cache layout. */
  modelType: string;
  /** What transformers.js adds to the positions it feeds (see `DecoderOptions.positionOffset`). */
  positionOffset: number;
}

/** An architecture or model folder the export cannot write, with the reason and what to do instead. */
export class OnnxUnsupportedError extends Error {
  override name = 'OnnxUnsupportedError';
}

const TARGETS: Readonly<Record<Architecture, TransformersJsTarget | string>> = {
  LlamaForCausalLM: { modelType: 'llama', positionOffset: 0 },
  MistralForCausalLM: { modelType: 'mistral', positionOffset: 0 },
  Qwen2ForCausalLM: { modelType: 'qwen2', positionOffset: 0 },
  Qwen3ForCausalLM: { modelType: 'qwen3', positionOffset: 0 },
  Olmo2ForCausalLM: { modelType: 'olmo2', positionOffset: 0 },
  SmolLM3ForCausalLM: { modelType: 'smollm3', positionOffset: 0 },
  Gemma2ForCausalLM: { modelType: 'gemma2', positionOffset: 0 },
  // transformers.js counts Gemma 3's position_ids from 1 (cumsum of the mask without the −1, as for PaliGemma).
  Gemma3ForCausalLM: { modelType: 'gemma3_text', positionOffset: 1 },
  // The text model of the multimodal checkpoint (its config is read as Gemma3ForCausalLM's; the vision tower is not exported).
  Gemma3ForConditionalGeneration: { modelType: 'gemma3_text', positionOffset: 1 },
  Phi3ForCausalLM: { modelType: 'phi3', positionOffset: 0 },
  Qwen3MoeForCausalLM: { modelType: 'qwen3_moe', positionOffset: 0 },
  MixtralForCausalLM: 'transformers.js 4.3 has no mixtral model type, so it would not load the folder as a causal LM',
};

/** The supported architectures, for messages and docs. */
export const TRANSFORMERSJS_ARCHITECTURES = Object.keys(TARGETS).filter((a) => typeof TARGETS[a as Architecture] !== 'string');

/** Refuses an architecture by name (before anything is loaded); `where` names the config file. */
export function checkTransformersJsArchitecture(arch: string | undefined, where: string): void {
  if (arch === undefined) return;
  const target = (TARGETS as Readonly<Record<string, TransformersJsTarget | string>>)[arch];
  if (target === undefined) {
    throw new OnnxUnsupportedError(
      `${where}: --format onnx does not export ${arch}; it exports ${TRANSFORMERSJS_ARCHITECTURES.join(', ')}`,
    );
  }
  if (typeof target === 'string') {
    throw new OnnxUnsupportedError(
      `${where}: --format onnx does not export ${arch}: ${target}; export the merged safetensors folder instead ` +
        '(tuneforge export without --format), which Python transformers loads',
    );
  }
}

export function transformersJsTarget(config: ModelConfig): TransformersJsTarget {
  checkTransformersJsArchitecture(config.architecture, 'config.json');
  return TARGETS[config.architecture] as TransformersJsTarget;
}
