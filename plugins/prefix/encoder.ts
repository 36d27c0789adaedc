/**
 * Where the prefix table comes from: the trainable table itself (PEFT's saved `prompt_embeddings`), or, with
 * `projection`, the output of the reparameterising MLP (plugins/prompt/encoders.ts, PEFT's `PrefixEncoder`).
 */
import type { ModelConfig } from '../../core/index.ts';
import { prefixProjection, tableEncoder, type Encoder } from '../prompt/encoders.ts';
import type { PrefixConfig } from './config.ts';
import { prefixWidth, tokenDim } from './layout.ts';

export function prefixEncoder(c: ModelConfig, config: PrefixConfig): Encoder {
  const nvt = config.virtualTokens, outDim = prefixWidth(c);
  if (config.projection) return prefixProjection({ virtualTokens: nvt, tokenDim: tokenDim(c), hidden: config.encoderHidden, outDim });
  return tableEncoder({ virtualTokens: nvt, outDim }); // [nvt, L·2·KV·D], named as PEFT saves it
}
