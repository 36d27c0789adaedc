/**
 * A model from bytes a page fetched: config.json parsed and the checkpoint's tensors checked against it, as
 * core/models/load.ts `openModel` does for a folder (every missing tensor and shape mismatch reported together).
 */
import type { HostTensor } from '../../core/ir/host.ts';
import { castHostTensor } from '../../core/io/half.ts';
import { readSafetensorsBytes } from '../../core/io/safetensors-bytes.ts';
import { parseConfig, type ModelConfig } from '../../core/models/config.ts';
import { checkpointNames } from '../../core/models/family.ts';
import { paramSpecs } from '../../core/models/params.ts';

/** float32 weights by model name, from config.json (parsed JSON) and model.safetensors (its bytes). */
export function modelFromBytes(configJson: unknown, safetensors: Uint8Array): { config: ModelConfig; weights: Map<string, HostTensor> } {
  const config = parseConfig(configJson, 'config.json');
  const { tensors } = readSafetensorsBytes(safetensors, 'model.safetensors');
  const weights = new Map<string, HostTensor>();
  const problems: string[] = [];
  for (const spec of paramSpecs(config)) {
    const name = checkpointNames(spec.name, config.wrappedCheckpoint).find((n) => tensors.has(n));
    const t = name === undefined ? undefined : tensors.get(name);
    if (!t) problems.push(`missing tensor ${spec.name} (expected shape [${spec.shape}])`);
    else if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
      problems.push(`tensor ${spec.name} has shape [${t.shape}], expected [${spec.shape}]`);
    } else weights.set(spec.name, castHostTensor(t, 'float32', `model.safetensors: tensor "${name}"`));
  }
  if (problems.length) throw new Error(`model.safetensors does not match config.json:\n  ${problems.join('\n  ')}`);
  return { config, weights };
}
