/** Reading a PEFT `LORA` folder: a `lora()` plugin whose inputs are the file's `<module>.lora_A/B.weight`. */
import { z } from 'zod';
import { AdapterConfigError, parseAdapterConfig, type PeftFormat } from '../peft/format.ts';
import { lora } from './index.ts';

const loraFile = z
  .object({
    r: z.number().int().positive(),
    lora_alpha: z.number().positive(),
    target_modules: z.union([z.array(z.string()).min(1), z.string()]),
    lora_dropout: z.number().min(0).lt(1).default(0),
    use_rslora: z.boolean().default(false),
    fan_in_fan_out: z.boolean().default(false),
    bias: z.enum(['none']).default('none'),
    rank_pattern: z.record(z.string(), z.number().int().positive()).nullish(),
    alpha_pattern: z.record(z.string(), z.number().positive()).nullish(),
    use_dora: z.literal(false).optional(),
  })
  .loose();

export const loraPeft: PeftFormat = {
  types: ['LORA'],
  plugin(raw, _tensors, where) {
    const c = parseAdapterConfig(loraFile, raw, where);
    if (c.fan_in_fan_out) throw new AdapterConfigError(where, 'fan_in_fan_out', 'true is for GPT-2 Conv1D layers; Llama-family linear layers need false');
    return lora({
      r: c.r, alpha: c.lora_alpha, targets: c.target_modules, dropout: c.lora_dropout, useRslora: c.use_rslora,
      rankPattern: c.rank_pattern ?? {}, alphaPattern: c.alpha_pattern ?? {},
    });
  },
};
