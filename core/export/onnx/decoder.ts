/**
 * The decoder graph a transformers.js causal LM runs (its `onnx/model.onnx`), traced with our model builder:
 *
 *   inputs   input_ids [batch, T] int64, attention_mask [batch, P+T] int64, position_ids [batch, T] int64,
 *            past_key_values.N.key / .value [batch, kv_heads, P, head_dim] float32
 *   outputs  logits [batch, T, vocab], present.N.key / .value [batch, kv_heads, P+T, head_dim]
 *
 * T tokens enter after a cache of P (P = 0 on the first call: transformers.js feeds empty pasts, shaped from the
 * model's input metadata with every free axis but `batch_size` at 0). Each layer's keys and values are the past ones
 * followed by the new ones, and are returned whole as the next call's past. Queries see key j when j is at or before
 * their own place P + t, the attention mask marks j as a real token (left padding is 0) and, on sliding layers, j is
 * within the window; positions come from `position_ids`, which transformers.js derives from the attention mask.
 */
import { trace, type GraphBuilder, type Graph, type Tensor } from '../../ir/graph.ts';
import { addDims } from '../../ir/shape.ts';
import type { ModelConfig } from '../../models/config.ts';
import { buildCausalLM, type AttentionInputs } from '../../models/llama.ts';
import { MASKED } from '../../nn/attention.ts';
import * as op from '../../ops/api.ts';

/** The symbolic dims of the decoder and the ONNX dim_params they are written as (transformers.js reads `batch_size`). */
export const DECODER_DIMS = { B: 'batch_size', T: 'sequence_length', P: 'past_sequence_length' } as const;

export const pastName = (layer: number, kind: 'key' | 'value'): string => `past_key_values.${layer}.${kind}`;
export const presentName = (layer: number, kind: 'key' | 'value'): string => `present.${layer}.${kind}`;

export interface DecoderOptions {
  /**
   * Subtracted from `position_ids`: transformers.js feeds Gemma 3's positions counted from 1 (as PaliGemma's are),
   * the model rotates by positions from 0. The logits would not show it (rotary scores depend on position
   * differences only); the cached keys are then the ones Hugging Face's model computes.
   */
  positionOffset?: number;
}

/** The decoder graph, with every parameter a float32 input under its Hugging Face name (made resident on lowering). */
export function decoderGraph(c: ModelConfig, opts: DecoderOptions = {}): Graph {
  const B = 'B', T = 'T', P = 'P';
  const S = addDims(P, T);
  return trace((g) => {
    let positionIds = g.input('position_ids', 'int64', [B, T]);
    if (opts.positionOffset) positionIds = op.add(positionIds, op.scalar(positionIds, -opts.positionOffset));
    const attentionMask = g.input('attention_mask', 'int64', [B, S]);
    const masks = new Map<number | null, Tensor>();
    const present: Record<string, Tensor> = {};
    const attention = (a: AttentionInputs): AttentionInputs => {
      const window = c.family.layers[a.layer]!.slidingWindow;
      let mask = masks.get(window);
      if (!mask) masks.set(window, (mask = keyMask(attentionMask, window)));
      const k = withPast(g, a.k, pastName(a.layer, 'key'));
      const v = withPast(g, a.v, pastName(a.layer, 'value'));
      present[presentName(a.layer, 'key')] = k;
      present[presentName(a.layer, 'value')] = v;
      return { ...a, k, v, mask };
    };
    const m = buildCausalLM(g, c, { batch: B, seq: T, positionIds, hooks: { attention } });
    return { logits: m.logits, ...present };
  });
}

/** The cached keys (or values) [B, KV, P, D] followed by the new ones [B, KV, T, D]. */
function withPast(g: GraphBuilder, fresh: Tensor, name: string): Tensor {
  const [B, KV, , D] = fresh.shape;
  return op.concat([g.input(name, 'float32', [B!, KV!, 'P', D!]), fresh], 2);
}

/** Additive mask [B, 1, T, P+T]: 0 where query t may read key j, MASKED elsewhere. */
function keyMask(attentionMask: Tensor, window: number | null): Tensor {
  const [B, S] = attentionMask.shape;
  const key = op.iota(attentionMask, [1, 1, 1, S!], 3, 'float32'); // j
  const query = op.reshape(op.slice(op.iota(attentionMask, [S!], 0, 'float32'), 0, 'P', S!), [1, 1, 'T', 1]); // P + t
  let visible = op.mul(op.cast(op.lessEqual(key, query), 'float32'), op.cast(op.reshape(attentionMask, [B!, 1, 1, S!]), 'float32'));
  if (window) visible = op.mul(visible, op.cast(op.less(op.sub(query, key), window), 'float32')); // i − window < j
  return op.mul(op.sub(1, visible), MASKED);
}
