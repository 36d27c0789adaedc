/** The PEFT `PREFIX_TUNING` folder: the config and `prompt_embeddings` [nvt, layers·2·kv_heads·head_dim]. */
import type { HostTensor, PluginContext } from '../../core/index.ts';
import { encoderOutput, promptLearningFields, writePromptLearningAdapter } from '../peft/prompt-learning.ts';
import type { Encoder } from '../prompt/encoders.ts';
import type { PrefixConfig } from './config.ts';
import { tokenDim } from './layout.ts';

export async function exportPrefix(ctx: PluginContext, dir: string, trained: ReadonlyMap<string, HostTensor>, config: PrefixConfig, encoder: Encoder): Promise<string[]> {
  const c = ctx.model.config;
  const td = tokenDim(c);
  const peft = {
    ...promptLearningFields(ctx, 'PREFIX_TUNING', config.virtualTokens, td, c.kvHeads),
    encoder_hidden_size: config.encoderHidden ?? td,
    // The file holds the projection's output, so PEFT (in inference mode) loads it as the table either way.
    prefix_projection: config.projection,
  };
  return writePromptLearningAdapter(dir, peft, await encoderOutput(encoder, trained));
}
