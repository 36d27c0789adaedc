/** PEFT adapter folders: `adapter_config.json` + `adapter_model.safetensors` with `base_model.model.` key prefixes. */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readAll, writeSafetensors, type GraphBuilder, type HostTensor, type ModelHooks } from '../../core/index.ts';
import { loraLinearHook } from './layer.ts';
import { targetMatcher } from './targets.ts';

export const PEFT_PREFIX = 'base_model.model.';

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

/** Reads an adapter folder; tensor names come back without the PEFT prefix (`model.layers.0...lora_A.weight`). */
export async function readPeftAdapter(dir: string): Promise<{ config: PeftLoraConfig; tensors: Map<string, HostTensor> }> {
  const configPath = join(dir, 'adapter_config.json');
  let config: PeftLoraConfig;
  try {
    config = JSON.parse(await readFile(configPath, 'utf8')) as PeftLoraConfig;
  } catch (e) {
    throw new Error(`${configPath}: cannot read adapter config (${(e as Error).message})`);
  }
  if (config.peft_type !== 'LORA') throw new Error(`${configPath}: peft_type is '${config.peft_type}', only LORA adapters are supported here`);
  if (config.fan_in_fan_out) throw new Error(`${configPath}: fan_in_fan_out adapters (GPT-2 Conv1D) are not supported`);
  const raw = await readAll(join(dir, 'adapter_model.safetensors'), { as: 'float32' });
  const tensors = new Map<string, HostTensor>();
  for (const [name, t] of raw) tensors.set(name.startsWith(PEFT_PREFIX) ? name.slice(PEFT_PREFIX.length) : name, t);
  return { config, tensors };
}

/** Writes an adapter folder atomically enough for tools: tensors first, the config last (its presence marks completion). */
export async function writePeftAdapter(dir: string, config: PeftLoraConfig, tensors: ReadonlyMap<string, HostTensor>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const prefixed = new Map<string, HostTensor>();
  for (const [name, t] of tensors) prefixed.set(`${PEFT_PREFIX}${name}`, t);
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), prefixed);
  const tmp = join(dir, `.adapter_config.json.tmp-${process.pid}`);
  await writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`);
  await rename(tmp, join(dir, 'adapter_config.json'));
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
