import { z } from 'zod';

export const zoSchema = z
  .object({
    variant: z
      .enum(['sgd', 'sign', 'mmt', 'cons', 'adam'])
      .default('sgd')
      .describe('sgd: θ -= lr·g·z (MeZO); sign: uses sign(g); mmt: momentum over g·z; cons: keeps the best of θ, θ-lr·g·z, θ+lr·g·z; adam: Adam moments over g·z'),
    eps: z.number().positive().default(1e-3).describe('perturbation size ε (MeZO: 1e-3 for full parameters; 1e-2 for LoRA, 1e-1 for prefix)'),
    estimate: z.enum(['two-sided', 'one-sided']).default('two-sided').describe('two-sided: (f(θ+εz) - f(θ-εz)) / 2ε; one-sided: (f(θ+εz) - f(θ)) / ε'),
    queries: z.number().int().positive().default(1).describe('random directions per step; their estimates are averaged'),
    momentum: z.number().min(0).lt(1).default(0.9).describe('mmt: momentum coefficient'),
    beta1: z.number().min(0).lt(1).default(0.9).describe('adam: first-moment decay'),
    beta2: z.number().min(0).lt(1).default(0.999).describe('adam: second-moment decay'),
    adamEps: z.number().positive().default(1e-8).describe('adam: epsilon'),
  })
  .strict();

export type ZoOptions = z.input<typeof zoSchema>;
export type ZoConfig = z.output<typeof zoSchema>;
