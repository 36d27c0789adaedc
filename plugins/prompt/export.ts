/** PEFT's `PROMPT_TUNING` and `P_TUNING` folders: the config and `prompt_embeddings` [nvt, hidden]. */
import type { HostTensor, PluginContext } from '../../core/index.ts';
import { encoderOutput, promptLearningFields, writePromptLearningAdapter } from '../peft/prompt-learning.ts';
import type { PromptConfig } from './config.ts';
import type { Encoder } from './encoders.ts';

const INIT_NAMES = { random: 'RANDOM', text: 'TEXT', vocab: 'SAMPLE_VOCAB' } as const;

export async function exportPrompt(ctx: PluginContext, dir: string, trained: ReadonlyMap<string, HostTensor>, config: PromptConfig, encoder: Encoder): Promise<string[]> {
  const c = ctx.model.config;
  const common = promptLearningFields(ctx, config.encoder === 'none' ? 'PROMPT_TUNING' : 'P_TUNING', config.virtualTokens, c.hidden, c.heads);
  const peft =
    config.encoder === 'none'
      ? { ...common, prompt_tuning_init: INIT_NAMES[config.init], prompt_tuning_init_text: config.initText ?? null, tokenizer_name_or_path: common.base_model_name_or_path }
      : {
          ...common,
          encoder_reparameterization_type: config.encoder.toUpperCase(),
          encoder_hidden_size: config.encoderHidden ?? c.hidden,
          encoder_num_layers: config.encoderLayers,
          encoder_dropout: 0,
        };
  return writePromptLearningAdapter(dir, peft, await encoderOutput(encoder, trained));
}
