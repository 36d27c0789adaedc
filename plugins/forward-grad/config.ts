import { z } from 'zod';

export const forwardGradSchema = z
  .object({
    queries: z.number().int().positive().default(1).describe('random directions v per step; the estimates (∇f·v) v are averaged'),
  })
  .strict();

export type ForwardGradOptions = z.input<typeof forwardGradSchema>;
