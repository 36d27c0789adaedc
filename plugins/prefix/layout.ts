/**
 * PEFT's prefix layout. The prefix is one table [nvt, layers·2·kv_heads·head_dim]; viewed as
 * [nvt, layers·2, kv_heads, head_dim], layer l's keys are slot 2l and its values slot 2l+1. Grouped-query models use
 * the key/value heads (PEFT's token_dim = kv_heads · head_dim). Prefix keys are used as stored: no rotary embedding.
 */
import { op, type ModelConfig, type Tensor } from '../../core/index.ts';

/** The key/value width of one prefix slot: PEFT's token_dim for this model. */
export const tokenDim = (c: ModelConfig): number => c.kvHeads * c.headDim;

/** Columns of the flat prefix table. */
export const prefixWidth = (c: ModelConfig): number => c.layers * 2 * tokenDim(c);

/** [nvt, layers·2·KV·D] -> [layers·2, KV, nvt, D]: each layer's keys and values in the attention's head layout. */
export function prefixSlots(table: Tensor, c: ModelConfig): Tensor {
  const nvt = table.shape[0] as number;
  const viewed = op.reshape(table, [nvt, c.layers * 2, c.kvHeads, c.headDim]); // [nvt, L·2, KV, D]
  return op.transpose(viewed, [1, 2, 0, 3]); // [L·2, KV, nvt, D]
}

/** Slot `index` of [L·2, KV, nvt, D] as [1, KV, nvt, D]. */
export function slot(slots: Tensor, index: number): Tensor {
  const [, KV, nvt, D] = slots.shape as number[];
  return op.reshape(op.slice(slots, 0, index, index + 1), [1, KV!, nvt!, D!]);
}

/**
 * Prepends the prefix to a sequence's keys (or values): [1, KV, nvt, D] and [B, KV, R, D] -> [B, KV, nvt+R, D].
 */
export function prependSlots(prefix: Tensor, kv: Tensor): Tensor {
  const [B, KV, , D] = kv.shape;
  return op.concat([op.broadcastTo(prefix, [B!, KV!, prefix.shape[2]!, D!]), kv], 2);
}

/**
 * Decoding: writes the prefix into cache slots 0..nvt-1 of [B, KV, S, D] (the prompt starts at position nvt), so the
 * cache holds the prefix before the prompt exactly as PEFT's past_key_values do.
 */
export function writeSlots(prefix: Tensor, cache: Tensor): Tensor {
  const S = cache.shape[2] as number;
  const nvt = prefix.shape[2] as number;
  if (S <= nvt) throw new Error(`prefix: a ${S}-position cache has no room after the ${nvt} prefix slots; generate with a longer maxLen`);
  const padded = op.pad(prefix, 2, 0, S - nvt); // [1, KV, S, D]
  const isPrefix = op.less(op.iota(cache, [1, 1, S, 1], 2), nvt); // [1, 1, S, 1]
  return op.where(isPrefix, padded, cache);
}

/** Every real query sees every prefix slot: zeros prepended to the additive mask, [R, S] -> [R, nvt+S]. */
export function widenMask(mask: Tensor, nvt: number): Tensor {
  const R = mask.shape[0]!;
  const open = op.broadcastTo(op.scalar(mask, 0), [R, nvt]); // [R, nvt]
  return op.concat([open, mask], 1);
}
