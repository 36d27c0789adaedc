import { z } from 'zod';

export const prefixSchema = z
  .object({
    virtualTokens: z.number().int().positive().default(20).describe('prefix length: key/value slots prepended in every attention layer (PEFT num_virtual_tokens)'),
    projection: z
      .boolean()
      .default(false)
      .describe('reparameterise the prefix with an MLP (Embedding → Linear → Tanh → Linear), as Li & Liang do; the export keeps only its output'),
    encoderHidden: z.number().int().positive().optional().describe('hidden width of the projection MLP (PEFT encoder_hidden_size); default: the key/value width, kv_heads · head_dim'),
  })
  .strict();

export type PrefixOptions = z.input<typeof prefixSchema>;
export type PrefixConfig = z.output<typeof prefixSchema>;
