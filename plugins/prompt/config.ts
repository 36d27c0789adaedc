import { z } from 'zod';

export const promptSchema = z
  .object({
    virtualTokens: z.number().int().positive().default(20).describe('soft-prompt length: trainable vectors placed before every input (PEFT num_virtual_tokens)'),
    encoder: z
      .enum(['none', 'mlp', 'lstm'])
      .default('none')
      .describe("'none' is prompt tuning (the vectors themselves are trained); 'mlp' and 'lstm' are P-tuning (an encoder produces them from a trainable table)"),
    init: z
      .enum(['random', 'text', 'vocab'])
      .default('random')
      .describe("prompt tuning's start: N(0, 1) ('random'), the embeddings of initText's tokens repeated or cut to the length ('text'), or of tokens sampled from the vocabulary ('vocab')"),
    initText: z.string().min(1).optional().describe("the phrase for init 'text', e.g. 'Classify the sentiment of this review:'"),
    encoderHidden: z.number().int().positive().optional().describe("P-tuning encoder width (PEFT encoder_hidden_size); default: the model's hidden size"),
    encoderLayers: z.number().int().positive().default(2).describe("P-tuning LSTM layers (PEFT encoder_num_layers; the MLP always has three linear layers)"),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.init === 'text' && !c.initText) ctx.addIssue({ code: 'custom', path: ['initText'], message: "init 'text' needs initText" });
    if (c.init !== 'random' && c.encoder !== 'none') ctx.addIssue({ code: 'custom', path: ['init'], message: `init '${c.init}' is for prompt tuning; P-tuning's encoder input starts random` });
  });

export type PromptOptions = z.input<typeof promptSchema>;
export type PromptConfig = z.output<typeof promptSchema>;
