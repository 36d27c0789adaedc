/**
 * Where the soft prompt [nvt, hidden] comes from: the trainable table itself (prompt tuning, named as PEFT saves it)
 * or a P-tuning encoder's output (encoders.ts), and how prompt tuning's table starts.
 */
import { hostTensor, seededRandom, type BaseWeights, type HostTensor, type ModelConfig, type PluginContext } from '../../core/index.ts';
import type { PromptConfig } from './config.ts';
import { lstmPromptEncoder, mlpPromptEncoder, tableEncoder, type Encoder } from './encoders.ts';

export function promptEncoder(c: ModelConfig, config: PromptConfig): Encoder {
  const nvt = config.virtualTokens, d = c.hidden;
  if (config.encoder === 'mlp') return mlpPromptEncoder({ virtualTokens: nvt, tokenDim: d, hidden: config.encoderHidden });
  if (config.encoder === 'lstm') return lstmPromptEncoder({ virtualTokens: nvt, tokenDim: d, hidden: config.encoderHidden, layers: config.encoderLayers });
  return tableEncoder({ virtualTokens: nvt, outDim: d });
}

/** Token ids whose embeddings start the prompt: the text's (with the tokenizer's special tokens, as PEFT's call adds them), repeated or cut to `nvt`. */
export function initTokenIds(ctx: PluginContext, config: PromptConfig): number[] {
  const nvt = config.virtualTokens;
  if (config.init === 'vocab') {
    const random = seededRandom(ctx.run.seed * 7919 + 15485863);
    return Array.from({ length: nvt }, () => Math.floor(random() * ctx.model.config.vocabSize));
  }
  if (!ctx.tokenizer) throw new Error("init 'text' needs the model's tokenizer, which this context does not have");
  const ids = ctx.tokenizer.encode(config.initText!, { addSpecialTokens: true });
  if (ids.length === 0) throw new Error(`initText ${JSON.stringify(config.initText)} has no tokens`);
  return Array.from({ length: nvt }, (_, i) => ids[i % ids.length]!);
}

/** Rows `ids` of the token embedding table [V, C], read from the base weights. */
export async function embeddingRows(base: BaseWeights, ids: readonly number[], hidden: number): Promise<HostTensor> {
  const table = (await base.read('model.embed_tokens.weight')).data as Float32Array; // [V, C]
  const out = new Float32Array(ids.length * hidden);
  ids.forEach((id, row) => out.set(table.subarray(id * hidden, (id + 1) * hidden), row * hidden));
  return hostTensor('float32', [ids.length, hidden], out);
}
