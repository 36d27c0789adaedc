/**
 * The PEFT folder LLM-Adapters reads: `adapter_config.json` with `BottleneckConfig`'s fields and
 * `adapter_model.safetensors` with keys `base_model.model.<module>.adapter_down.weight` [bs, d_in],
 * `.adapter_up.weight` [d_out, bs] (and `.adapter_scaling` [1] when the scaling is learned). The fork itself saves
 * `adapter_model.bin` (torch pickle) with the same names; we write safetensors.
 */
import type { HostTensor } from '../../core/index.ts';
import { writeAdapterFolder } from '../peft/folder.ts';
import type { AdaptersConfig, NonLinearity } from './config.ts';

export { PEFT_PREFIX } from '../peft/folder.ts';

/** `BottleneckConfig` as the fork serialises it (its field names, inference mode). */
export interface PeftBottleneckConfig {
  task_type: 'CAUSAL_LM';
  base_model_name_or_path: string | null;
  inference_mode: boolean;
  peft_type: 'BOTTLENECK';
  bottleneck_size: number;
  non_linearity: NonLinearity;
  adapter_dropout: number;
  use_parallel_adapter: boolean;
  use_adapterp: boolean;
  target_modules: string[] | string;
  scaling: number | 'learned';
  bias: 'none';
  init_weights: 'bert' | 'mam_adapter';
}

export function peftConfig(
  config: AdaptersConfig,
  targets: readonly string[] | string,
  adaptedModules: readonly string[],
  bottleneckSize: number,
  baseModel: string | null,
): PeftBottleneckConfig {
  return {
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    inference_mode: true,
    peft_type: 'BOTTLENECK',
    bottleneck_size: bottleneckSize,
    non_linearity: config.nonLinearity,
    adapter_dropout: config.dropout,
    use_parallel_adapter: config.kind === 'parallel',
    // AdapterP only changes the fork's default targets (down_proj); the targets are written explicitly.
    use_adapterp: false,
    // The fork matches a list by suffix and a string as a full regular expression; it has no "all-linear".
    target_modules: typeof targets === 'string' && targets !== 'all-linear' ? targets : [...adaptedModules],
    scaling: config.scaling,
    bias: 'none',
    init_weights: config.init === 'mam' ? 'mam_adapter' : 'bert',
  };
}

/**
 * The config as JSON, with `scaling` and `adapter_dropout` written as floats (`1.0`): the fork tests
 * `isinstance(scaling, float)`, and Python reads `1` as an int, which would leave its layers without a scaling.
 */
export function peftConfigJson(config: PeftBottleneckConfig): string {
  return `${JSON.stringify(config, null, 2)}\n`.replace(/^( {2}"(?:scaling|adapter_dropout)": )(-?\d+)(,?)$/gm, '$1$2.0$3');
}

/** Writes the folder: tensors first, the config last (its presence marks a complete adapter). */
export async function writeBottleneckAdapter(dir: string, config: PeftBottleneckConfig, tensors: ReadonlyMap<string, HostTensor>): Promise<string[]> {
  return writeAdapterFolder(dir, config as unknown as Record<string, unknown>, tensors, () => peftConfigJson(config));
}
