/** Writing a merged model folder that the Hugging Face ecosystem loads: safetensors + config + tokenizer files. */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { HostTensor } from '../ir/host.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import type { ModelConfig } from '../models/config.ts';
import { paramSpecs } from '../models/params.ts';

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'tokenizer.model'];

/** Writes `dir/model.safetensors` (base tensor names only, float32), `config.json` and the tokenizer files. */
export async function writeModelFolder(dir: string, config: ModelConfig, weights: ReadonlyMap<string, HostTensor>, sourceDir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const tensors = new Map<string, HostTensor>();
  const missing: string[] = [];
  for (const spec of paramSpecs(config)) {
    const t = weights.get(spec.name);
    if (!t) missing.push(spec.name);
    else tensors.set(spec.name, t);
  }
  if (missing.length) throw new Error(`export: missing weights ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
  const written = [join(dir, 'model.safetensors'), join(dir, 'config.json')];
  await writeSafetensors(written[0]!, tensors, { format: 'pt' });
  await writeFile(written[1]!, `${JSON.stringify({ ...config.raw, torch_dtype: 'float32' }, null, 2)}\n`);
  for (const f of TOKENIZER_FILES) {
    if (existsSync(join(sourceDir, f))) {
      await copyFile(join(sourceDir, f), join(dir, f));
      written.push(join(dir, f));
    }
  }
  return written;
}
