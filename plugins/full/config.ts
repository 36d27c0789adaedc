import { z } from 'zod';

export const fullFinetuneSchema = z
  .object({
    include: z.string().optional().describe('regular expression: only parameters whose name matches are trained (default: all)'),
    exclude: z.string().optional().describe('regular expression: parameters whose name matches stay frozen (e.g. "embed_tokens")'),
  })
  .strict();

export type FullFinetuneOptions = z.input<typeof fullFinetuneSchema>;
