import { z } from 'zod';

export const lisaSchema = z
  .object({
    activeLayers: z.number().int().positive().default(2)
      .describe('γ: how many decoder layers are trained at a time; all other decoder layers stay frozen (LMFlow lisa_activated_layers, default 2)'),
    interval: z.number().int().positive().default(20)
      .describe('K: optimizer steps between switches of the active layers (LMFlow lisa_interval_steps, default 20)'),
    sampling: z.enum(['uniform', 'weight-norm', 'grad-norm']).default('uniform')
      .describe(
        'how the next active layers are drawn: "uniform" (the paper and LMFlow); "weight-norm" (probability grows with the ' +
        "layer's current weight norm ‖θ_l‖); \"grad-norm\" (probability grows with the layer's gradient norm, measured while " +
        'it was last active, relative to the gradient norm of the always-trainable tensors in the same steps; layers not yet ' +
        'measured count as the best measured one, so each is tried early). The first window is always uniform.',
      ),
    temperature: z.number().positive().default(1)
      .describe('importance sampling sharpness: p_l ∝ statistic_l^(1/temperature). 1 = proportional; larger flattens towards uniform; smaller favours the top layers'),
    explore: z.number().min(0).max(1).default(0.1)
      .describe('share of the probability spread uniformly over all candidate layers, so no layer becomes unreachable (importance sampling only)'),
    layers: z.array(z.number().int().min(0)).min(1).optional()
      .describe('candidate decoder layer indices to sample from (default: every decoder layer); the others stay frozen'),
    trainEmbeddings: z.boolean().default(true).describe('keep the token embeddings trainable all the time'),
    trainHead: z.boolean().default(true)
      .describe('keep the LM head trainable all the time; with tied embeddings the head is the embedding matrix, which is then trainable when either option is set'),
    trainFinalNorm: z.boolean().default(true).describe('keep the final RMSNorm before the head trainable all the time (it belongs with the head)'),
  })
  .strict();

export type LisaOptions = z.input<typeof lisaSchema>;
export type LisaConfig = z.output<typeof lisaSchema>;
