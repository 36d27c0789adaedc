/**
 * Reading a PEFT `PREFIX_TUNING` folder. The file holds `prompt_embeddings` [nvt, layers·2·token_dim] (with projection,
 * the MLP's output): it is loaded as the table, without projection, as PEFT loads it in inference mode.
 */
import { z } from 'zod';
import { AdapterConfigError, parseAdapterConfig, type PeftFormat } from '../peft/format.ts';
import { prefix } from './index.ts';

const prefixFile = z
  .object({
    num_virtual_tokens: z.number().int().positive(),
    token_dim: z.number().int().positive(),
    num_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    num_transformer_submodules: z.literal(1).default(1),
    prefix_projection: z.boolean().default(false),
  })
  .loose();

export const prefixPeft: PeftFormat = {
  types: ['PREFIX_TUNING'],
  plugin(raw, tensors, where) {
    const c = parseAdapterConfig(prefixFile, raw, where);
    const table = tensors.get('prompt_embeddings');
    const width = c.num_layers * 2 * c.token_dim;
    if (!table) throw new AdapterConfigError(where, 'prompt_embeddings', 'the adapter file has no such tensor');
    if (table.shape.join() !== [c.num_virtual_tokens, width].join()) {
      throw new AdapterConfigError(where, 'num_virtual_tokens', `prompt_embeddings is [${table.shape}], but the config describes [${c.num_virtual_tokens}, ${width}] (num_layers · 2 · token_dim)`);
    }
    return prefix({ virtualTokens: c.num_virtual_tokens });
  },
};
