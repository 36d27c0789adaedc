import { z } from 'zod';

export const loraSchema = z
  .object({
    r: z.number().int().positive().default(8).describe('rank of the update B·A'),
    alpha: z.number().positive().default(16).describe('scaling numerator: the update is multiplied by alpha / r (alpha / sqrt(r) with rsLoRA)'),
    dropout: z.number().min(0).lt(1).default(0).describe('dropout on the LoRA input during training (0 = none)'),
    targets: z
      .union([z.array(z.string()).min(1), z.string()])
      .default(['q_proj', 'v_proj'])
      .describe('modules to adapt: names (q_proj, v_proj, ...), a regular expression over full module names, or "all-linear"'),
    useRslora: z.boolean().default(false).describe('rank-stabilised scaling alpha / sqrt(r) (Kalajdzievski 2023)'),
    rankPattern: z.record(z.string(), z.number().int().positive()).default({}).describe('per-module rank overrides, keyed by module name suffix'),
    alphaPattern: z.record(z.string(), z.number().positive()).default({}).describe('per-module alpha overrides, keyed by module name suffix'),
    init: z.enum(['kaiming', 'gaussian']).default('kaiming').describe('A initialisation: Kaiming-uniform (a = sqrt 5, PEFT default) or N(0, 1/r); B starts at zero'),
  })
  .strict();

export type LoraOptions = z.input<typeof loraSchema>;
export type LoraConfig = z.output<typeof loraSchema>;
