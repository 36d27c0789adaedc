/** PEFT adapter folders on disk: `adapter_config.json` + `adapter_model.safetensors` with `base_model.model.` keys. */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readAll, writeSafetensors, type HostTensor } from '../../core/index.ts';

export const PEFT_PREFIX = 'base_model.model.';

/** Reads a folder: the config as JSON and the tensors by name without the PEFT prefix (`prompt_embeddings` stays). */
export async function readAdapterFolder(dir: string): Promise<{ configPath: string; config: Record<string, unknown>; tensors: Map<string, HostTensor> }> {
  const configPath = join(dir, 'adapter_config.json');
  let config: unknown;
  try {
    config = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (e) {
    throw new Error(`${configPath}: cannot read adapter config (${(e as Error).message})`);
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw new Error(`${configPath}: expected a JSON object`);
  const weightsPath = join(dir, 'adapter_model.safetensors');
  let raw: Map<string, HostTensor>;
  try {
    raw = await readAll(weightsPath, { as: 'float32' });
  } catch (e) {
    const hint = (e as NodeJS.ErrnoException).code === 'ENOENT' ? ' (a folder saved as adapter_model.bin must be converted to safetensors first)' : '';
    throw new Error(`${weightsPath}: cannot read adapter weights: ${(e as Error).message}${hint}`);
  }
  const tensors = new Map<string, HostTensor>();
  for (const [name, t] of raw) tensors.set(name.startsWith(PEFT_PREFIX) ? name.slice(PEFT_PREFIX.length) : name, t);
  return { configPath, config: config as Record<string, unknown>, tensors };
}

/** The key PEFT stores a tensor under: `base_model.model.<name>`, except prompt learning's bare `prompt_embeddings`. */
export const peftKey = (name: string): string => (name === 'prompt_embeddings' ? name : `${PEFT_PREFIX}${name}`);

/**
 * Writes a folder: tensors first, then the config through a rename (its presence marks a complete folder). Keys get
 * the PEFT prefix, except prompt learning's `prompt_embeddings`, which PEFT saves bare.
 */
export async function writeAdapterFolder(
  dir: string,
  config: Readonly<Record<string, unknown>>,
  tensors: ReadonlyMap<string, HostTensor>,
  /** The config's text (a format may need Python-specific spellings, such as floats written `1.0`). */
  serialize: (config: Readonly<Record<string, unknown>>) => string = (c) => `${JSON.stringify(c, null, 2)}\n`,
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const keyed = new Map<string, HostTensor>();
  for (const [name, t] of tensors) keyed.set(peftKey(name), t);
  const weights = join(dir, 'adapter_model.safetensors');
  await writeSafetensors(weights, keyed, { format: 'pt' }); // the metadata PEFT's safe_save_file writes
  const tmp = join(dir, `.adapter_config.json.tmp-${process.pid}`);
  await writeFile(tmp, serialize(config));
  await rename(tmp, join(dir, 'adapter_config.json'));
  return [join(dir, 'adapter_config.json'), weights];
}
