/**
 * Reading PEFT `PROMPT_TUNING` and `P_TUNING` folders. Both hold only `prompt_embeddings` [nvt, hidden] (P-tuning's
 * encoder output: PEFT saves no encoder), so both load as prompt tuning on that table.
 */
import { z } from 'zod';
import { AdapterConfigError, parseAdapterConfig, type PeftFormat } from '../peft/format.ts';
import { prompt } from './index.ts';

const promptFile = z
  .object({
    num_virtual_tokens: z.number().int().positive(),
    token_dim: z.number().int().positive(),
    num_transformer_submodules: z.literal(1).default(1),
  })
  .loose();

export const promptPeft: PeftFormat = {
  types: ['PROMPT_TUNING', 'P_TUNING'],
  plugin(raw, tensors, where) {
    const c = parseAdapterConfig(promptFile, raw, where);
    const table = tensors.get('prompt_embeddings');
    if (!table) throw new AdapterConfigError(where, 'prompt_embeddings', 'the adapter file has no such tensor');
    if (table.shape.join() !== [c.num_virtual_tokens, c.token_dim].join()) {
      throw new AdapterConfigError(where, 'num_virtual_tokens', `prompt_embeddings is [${table.shape}], but the config describes [${c.num_virtual_tokens}, ${c.token_dim}]`);
    }
    return prompt({ virtualTokens: c.num_virtual_tokens });
  },
};
