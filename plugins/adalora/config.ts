import { z } from 'zod';

/** AdaLoRA's options, with Hugging Face PEFT's defaults (`AdaLoraConfig`), in camelCase. */
export const adaloraSchema = z
  .object({
    initR: z.number().int().positive().default(12)
      .describe('init_r: the rank every adapted module starts with (triplets P_i, λ_i, Q_i); also the ranknum of the scaling alpha / (initR + 1e-5)'),
    targetR: z.number().int().positive().default(8)
      .describe('target_r: the average rank left per module at the end of the schedule (final budget = targetR × modules)'),
    alpha: z.number().positive().default(8)
      .describe('lora_alpha: the update is multiplied by alpha / (initR + 1e-5), whatever rank a module keeps'),
    dropout: z.number().min(0).lt(1).default(0).describe('lora_dropout: dropout on the adapter input during training (0 = none)'),
    targets: z
      .union([z.array(z.string()).min(1), z.string()])
      .default(['q_proj', 'v_proj'])
      .describe('target_modules: names (q_proj, v_proj, ...), a regular expression over full module names, or "all-linear"'),
    tinit: z.number().int().min(0).default(0).describe('tinit: warm-up steps with the full initial budget and no masking'),
    tfinal: z.number().int().min(0).default(0).describe('tfinal: final steps trained with the rank pattern fixed at the target budget'),
    deltaT: z.number().int().positive().default(1).describe('deltaT: steps between two budget allocations (masking) while the budget decreases'),
    beta1: z.number().gt(0).lt(1).default(0.85).describe('beta1: EMA factor of the smoothed sensitivity I'),
    beta2: z.number().gt(0).lt(1).default(0.85).describe('beta2: EMA factor of the uncertainty U = EMA of |sensitivity − I|'),
    orthRegWeight: z.number().min(0).default(0.5)
      .describe('orth_reg_weight: weight of the orthogonality regulariser mean(‖AAᵀ − I‖_F, ‖BᵀB − I‖_F) added to the training loss'),
    totalStep: z.number().int().positive().optional()
      .describe("total_step: the T of the budget schedule (default: the run's optimizer steps)"),
    rankPattern: z.record(z.string(), z.array(z.boolean()).min(1)).optional()
      .describe(
        'rank_pattern of an adapter that was already pruned: per module (its name, or PEFT\'s "<module>.lora_E" key) one ' +
        'boolean per initial rank, true where the triplet was kept; the module then has that many ranks. When given, the ' +
        'allocation is over: ranks stay fixed and training fine-tunes the kept triplets',
      ),
  })
  .strict();

export type AdaloraOptions = z.input<typeof adaloraSchema>;
export type AdaloraConfig = z.output<typeof adaloraSchema>;
