/**
 * DoRA adapters as PEFT writes and reads them: a `LORA` adapter_config.json with `use_dora: true`, and
 * adapter_model.safetensors holding `base_model.model.<module>.lora_A.weight`, `.lora_B.weight` and
 * `.lora_magnitude_vector` per target module.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readAll, writeSafetensors, type HostTensor } from 'tuneforge';
import { z } from 'zod';
import { fromPeftKey, loraA, loraB, magnitude, peftKey } from './names.ts';
import type { DoraConfig } from './index.ts';

export async function writeDoraAdapter(dir: string, c: { r: number; alpha: number; targets: string[]; base: string | null }, modules: readonly string[], trained: ReadonlyMap<string, HostTensor>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = new Map<string, HostTensor>();
  for (const m of modules) for (const n of [loraA(m), loraB(m), magnitude(m)]) tensors.set(peftKey(n), trained.get(n)!);
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  const config = {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', use_dora: true, r: c.r, lora_alpha: c.alpha, target_modules: c.targets,
    lora_dropout: 0, bias: 'none', fan_in_fan_out: false, use_rslora: false, init_lora_weights: true,
    base_model_name_or_path: c.base, inference_mode: true,
  };
  await writeFile(join(dir, 'adapter_config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

const adapterConfig = z
  .object({
    peft_type: z.literal('LORA'),
    use_dora: z.literal(true, { message: 'use_dora must be true (a plain LoRA adapter: use the built-in lora plugin)' }),
    r: z.number().int().positive(),
    lora_alpha: z.number().positive(),
    target_modules: z.union([z.array(z.string()).min(1), z.string()]),
    use_rslora: z.literal(false, { message: 'rsLoRA scaling is not supported by this plugin' }).optional(),
  })
  .loose();

/** Options and tensors (by our parameter names) of a PEFT DoRA adapter folder. */
export async function readDoraAdapter(dir: string): Promise<{ options: DoraConfig; tensors: Map<string, HostTensor> }> {
  const path = join(dir, 'adapter_config.json');
  const parsed = adapterConfig.safeParse(JSON.parse(await readFile(path, 'utf8')));
  if (!parsed.success) throw new Error(`${path}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const c = parsed.data;
  const targets = typeof c.target_modules === 'string' ? (c.target_modules === 'all-linear' ? 'all-linear' : [c.target_modules]) : c.target_modules;
  const raw = await readAll(join(dir, 'adapter_model.safetensors'));
  const tensors = new Map([...raw].map(([k, v]) => [fromPeftKey(k), v]));
  return { options: { r: c.r, alpha: c.lora_alpha, targets }, tensors };
}
