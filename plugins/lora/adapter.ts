/** PEFT adapter folders: `adapter_config.json` + `adapter_model.safetensors` with `base_model.model.` key prefixes. */
import type { GraphBuilder, HostTensor, ModelHooks } from '../../core/index.ts';
import { PEFT_PREFIX, readAdapterFolder, writeAdapterFolder } from '../peft/folder.ts';
import { loraLinearHook } from './layer.ts';
import { targetMatcher } from './targets.ts';

export { PEFT_PREFIX };

export interface PeftLoraConfig {
  peft_type: 'LORA';
  task_type: 'CAUSAL_LM';
  r: number;
  lora_alpha: number;
  target_modules: string[] | string;
  base_model_name_or_path: string | null;
  lora_dropout?: number;
  bias?: 'none';
  use_rslora?: boolean;
  fan_in_fan_out?: boolean;
  rank_pattern?: Record<string, number>;
  alpha_pattern?: Record<string, number>;
  [extra: string]: unknown;
}

/** Reads a LoRA adapter folder; tensor names come back without the PEFT prefix (`model.layers.0...lora_A.weight`). */
export async function readPeftAdapter(dir: string): Promise<{ config: PeftLoraConfig; tensors: Map<string, HostTensor> }> {
  const { configPath, config: raw, tensors } = await readAdapterFolder(dir);
  const config = raw as PeftLoraConfig;
  if (config.peft_type !== 'LORA') throw new Error(`${configPath}: peft_type is '${config.peft_type}', only LORA adapters are supported here`);
  if (config.fan_in_fan_out) throw new Error(`${configPath}: fan_in_fan_out adapters (GPT-2 Conv1D) are not supported`);
  return { config, tensors };
}

/** Writes an adapter folder atomically enough for tools: tensors first, the config last (its presence marks completion). */
export async function writePeftAdapter(dir: string, config: PeftLoraConfig, tensors: ReadonlyMap<string, HostTensor>): Promise<void> {
  await writeAdapterFolder(dir, config, tensors);
}

/** Model hooks that apply a loaded PEFT adapter (its tensors become graph inputs under their own names). */
export function adapterHooks(g: GraphBuilder, config: PeftLoraConfig): ModelHooks {
  return {
    linear: loraLinearHook(
      g,
      { r: config.r, alpha: config.lora_alpha, useRslora: config.use_rslora, rankPattern: config.rank_pattern, alphaPattern: config.alpha_pattern },
      targetMatcher(config.target_modules),
    ),
  };
}
