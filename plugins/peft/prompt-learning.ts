/**
 * What prompt-learning adapters (prefix tuning, prompt tuning, P-tuning) save: one tensor, `prompt_embeddings`, the
 * encoder's output, never the encoder (PEFT's `get_prompt_embedding_to_save`), plus the fields PEFT's configs share.
 */
import { compile, type HostTensor, type PluginContext } from '../../core/index.ts';
import { encoderGraph, PROMPT_EMBEDDINGS_KEY, type Encoder } from '../prompt/encoders.ts';
import { writeAdapterFolder } from './folder.ts';

/** The encoder's output [nvt, outDim] for the trained parameters: run once, off the training path. */
export async function encoderOutput(encoder: Encoder, trained: ReadonlyMap<string, HostTensor>): Promise<HostTensor> {
  if (encoder.kind === 'table') {
    const t = trained.get(PROMPT_EMBEDDINGS_KEY);
    if (!t) throw new Error(`export: no trained '${PROMPT_EMBEDDINGS_KEY}'`);
    return t;
  }
  const exe = await compile(encoderGraph(encoder));
  try {
    const feeds: Record<string, HostTensor> = {};
    for (const p of encoder.params) {
      const t = trained.get(p.name);
      if (!t) throw new Error(`export: no trained '${p.name}'`);
      feeds[p.name] = t;
    }
    return (await exe.run(feeds))[PROMPT_EMBEDDINGS_KEY]!;
  } finally {
    await exe.release();
  }
}

/** Fields every PEFT prompt-learning config carries, for a decoder-only model. */
export function promptLearningFields(ctx: PluginContext, peftType: string, virtualTokens: number, tokenDim: number, heads: number): Record<string, unknown> {
  const c = ctx.model.config;
  return {
    task_type: 'CAUSAL_LM',
    peft_type: peftType,
    base_model_name_or_path: (c.raw._name_or_path as string | undefined) ?? null,
    inference_mode: true,
    num_virtual_tokens: virtualTokens,
    token_dim: tokenDim,
    num_transformer_submodules: 1,
    num_attention_heads: heads,
    num_layers: c.layers,
  };
}

/** Writes `dir` with the config and the one tensor. */
export async function writePromptLearningAdapter(dir: string, config: Record<string, unknown>, embeddings: HostTensor): Promise<string[]> {
  return writeAdapterFolder(dir, config, new Map([[PROMPT_EMBEDDINGS_KEY, embeddings]]));
}
