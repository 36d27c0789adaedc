/**
 * The Llama family (Llama 2/3, SmolLM, TinyLlama, Mistral, Qwen2) in the kernel's IR, with parameters named exactly as
 * in Hugging Face checkpoints. One builder serves training (full sequence) and generation (one token at a time
 * against a fixed-size key/value cache).
 */
import type { GraphBuilder, Tensor } from '../ir/graph.ts';
import type { Dim } from '../ir/shape.ts';
import * as nn from '../nn/index.ts';
import * as op from '../ops/api.ts';
import type { ModelConfig } from './config.ts';
import { paramSpecs } from './params.ts';
import { scaledInvFreq } from './rope-scaling.ts';

/** Where a linear layer sits, so plugins can pick targets by name (e.g. LoRA on `q_proj`, `v_proj`). */
export interface LinearSite {
  /** Hugging Face module path without `.weight`, e.g. `model.layers.3.self_attn.q_proj`. */
  name: string;
  /** Last component: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or lm_head. */
  module: string;
  /** Decoder layer index, or -1 for the head. */
  layer: number;
  inFeatures: number;
  outFeatures: number;
}

/**
 * The rows entering the first decoder layer. Soft prompts (prompt tuning, P-tuning) prepend rows; prefix tuning
 * reserves positions for its key/value slots. Labels need no extending: the builder drops the logits of virtual rows,
 * so logits stay aligned with `input_ids` (PEFT's -100 labels for those rows give the same loss).
 */
export interface TokenEmbeddings {
  /** [B, R, C]: R = T, plus any rows a plugin prepended. */
  embeds: Tensor;
  /** Leading rows of `embeds` that are not tokens of `input_ids`; their logits are dropped. */
  virtualRows: number;
  /**
   * Positions before the first token of `input_ids` (soft-prompt rows and prefix slots): token t sits at position
   * `lead + t`, as PEFT places it. When decoding, the generator fills positions below `lead` first.
   */
  lead: number;
  /** Decoding with a cache: the absolute position [B] of the single row (rows below `lead` are placeholders). */
  position?: Tensor;
}

/** One decoder layer's attention inputs, after the rotary embedding. */
export interface AttentionInputs {
  layer: number;
  /** [B, KV, S, D] keys and values (decoding: the whole cache, the new token written in). */
  k: Tensor;
  v: Tensor;
  /** Additive mask broadcastable to [B, H, R, S]: [R, S] over a sequence, [B, 1, 1, S] when decoding. */
  mask: Tensor;
  /** int64 positions of the queries: [R] over a sequence, [B, 1] when decoding. */
  positions: Tensor;
  /** True when decoding against a cache (one query row, S = cache length). */
  decoding: boolean;
}

/** Points where plugins change the model without the builder knowing about them. */
export interface ModelHooks {
  /** How each parameter enters the graph. Default: a float32 graph input with the Hugging Face name. */
  param?(g: GraphBuilder, name: string, shape: number[]): Tensor;
  /** Computes a linear layer. Default: x W^T + b. LoRA, adapters and quantised bases hook here. */
  linear?(site: LinearSite, x: Tensor, weight: Tensor, bias: Tensor | undefined): Tensor;
  /** Changes the rows entering the decoder (soft prompts). Default: the token embeddings as they are. */
  embeddings?(e: TokenEmbeddings): TokenEmbeddings;
  /** Changes a layer's keys, values and mask (prefix slots). Default: unchanged. */
  attention?(a: AttentionInputs): AttentionInputs;
}

export interface CausalLMOptions {
  batch: Dim;
  /** Tokens per sequence fed in this graph (1 when decoding with a cache). */
  seq: Dim;
  hooks?: ModelHooks;
  /**
   * Decode against a key/value cache of `maxLen` positions: adds inputs `position` [B] and `past.{k,v}.{i}`
   * [B, KV, maxLen, D], and outputs `present.{k,v}.{i}` (the caches with the new token written in).
   */
  cache?: { maxLen: number };
}

export interface CausalLMGraph {
  ids: Tensor;
  logits: Tensor; // [B, T, V]
  /** Only when decoding with a cache: updated caches by output name (`present.k.0`, ...). */
  cacheOut: Record<string, Tensor>;
  /** The residual stream after the embedding and after each decoder layer: where activation checkpointing cuts. */
  blockOutputs: Tensor[];
  /** Positions before the first token (see `TokenEmbeddings.lead`): the generator starts the prompt there. */
  lead: number;
  params: Map<string, Tensor>;
}

/**
 * Builds the forward pass into `g`. Inputs: `input_ids` int64 [B, T] and every parameter (see `hooks.param`).
 * Returns logits; losses are composed by the caller (see `causalLMLoss`).
 */
export function buildCausalLM(g: GraphBuilder, c: ModelConfig, opts: CausalLMOptions): CausalLMGraph {
  const { batch: B, seq: T } = opts;
  const H = c.heads, KV = c.kvHeads, D = c.headDim;
  const params = new Map<string, Tensor>();
  const shapes = new Map(paramSpecs(c).map((p) => [p.name, p.shape]));
  const param = (name: string): Tensor => {
    let t = params.get(name);
    if (!t) {
      const shape = shapes.get(name);
      if (!shape) throw new Error(`internal: unknown parameter ${name}`);
      t = opts.hooks?.param ? opts.hooks.param(g, name, shape) : g.input(name, 'float32', shape);
      params.set(name, t);
    }
    return t;
  };
  const linear = (name: string, x: Tensor, layer: number, hasBias: boolean): Tensor => {
    const weight = param(`${name}.weight`);
    const bias = hasBias ? param(`${name}.bias`) : undefined;
    const [outFeatures, inFeatures] = weight.shape as [number, number];
    const site: LinearSite = { name, module: name.slice(name.lastIndexOf('.') + 1), layer, inFeatures, outFeatures };
    return opts.hooks?.linear ? opts.hooks.linear(site, x, weight, bias) : nn.linear(x, weight, bias);
  };

  const ids = g.input('input_ids', 'int64', [B, T]);
  const cacheLen = opts.cache?.maxLen;
  const position = cacheLen ? g.input('position', 'int64', [B]) : undefined; // where the (single) new token goes
  const tokens: TokenEmbeddings = { embeds: nn.embedding(param('model.embed_tokens.weight'), ids), virtualRows: 0, lead: 0, position };
  const { embeds, virtualRows, lead } = opts.hooks?.embeddings ? opts.hooks.embeddings(tokens) : tokens;
  let x = embeds; // [B, R, C]
  const R = x.shape[1]!; // rows: T plus any soft-prompt rows
  const blockOutputs = [x];

  // Positions, rotary tables and the attention mask.
  let positions: Tensor; // [B, 1] or [R]
  if (position) positions = op.reshape(position, [B, 1]);
  else {
    positions = op.iota(ids, [R], 0);
    if (lead !== virtualRows) positions = op.add(positions, op.scalar(positions, lead - virtualRows));
  }
  const rope = nn.ropeTables(positions, scaledInvFreq(c)); // [B, 1, D] or [R, D]
  const cos = position ? op.reshape(rope.cos, [B, 1, 1, D]) : rope.cos;
  const sin = position ? op.reshape(rope.sin, [B, 1, 1, D]) : rope.sin;
  let mask: Tensor;
  if (position && cacheLen) {
    // Key s is visible from the new token at p when s <= p (and within the sliding window).
    const s = op.iota(ids, [B, 1, 1, cacheLen], 3);
    const p = op.reshape(position, [B, 1, 1, 1]);
    let visible = op.cast(op.lessEqual(s, p), 'float32');
    if (c.slidingWindow) visible = op.mul(visible, op.cast(op.greater(op.cast(s, 'float32'), op.sub(op.cast(p, 'float32'), c.slidingWindow)), 'float32'));
    mask = op.mul(op.sub(1, visible), nn.MASKED); // 0 visible, MASKED hidden  [B, 1, 1, S]
  } else {
    mask = nn.causalMask(x, R, R);
    if (c.slidingWindow) {
      const t = op.iota(ids, [R, R], 0, 'float32'), s = op.iota(ids, [R, R], 1, 'float32'); // sub is float-only
      const tooFar = op.cast(op.lessEqual(s, op.sub(t, c.slidingWindow)), 'float32');
      mask = op.add(mask, op.mul(tooFar, nn.MASKED));
    }
  }

  const cacheOut: Record<string, Tensor> = {};
  const heads = (y: Tensor, n: number) => op.transpose(op.reshape(y, [B, R, n, D]), [0, 2, 1, 3]); // [B, n, R, D]
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}`;
    const h = nn.rmsNorm(x, param(`${p}.input_layernorm.weight`), c.rmsNormEps); // [B, R, C]
    const q = nn.applyRope(heads(linear(`${p}.self_attn.q_proj`, h, i, c.qkvBias), H), cos, sin); // [B, H, R, D]
    let k = nn.applyRope(heads(linear(`${p}.self_attn.k_proj`, h, i, c.qkvBias), KV), cos, sin); // [B, KV, R, D]
    let v = heads(linear(`${p}.self_attn.v_proj`, h, i, c.qkvBias), KV); // [B, KV, R, D]
    let layerMask = mask;
    if (position && cacheLen) {
      // Write the new key/value into slot `position` of the fixed-size cache: [B, KV, S, D].
      const slot = op.equal(op.iota(ids, [B, 1, cacheLen, 1], 2), op.reshape(position, [B, 1, 1, 1])); // [B, 1, S, 1]
      const kCache = g.input(`past.k.${i}`, 'float32', [B, KV, cacheLen, D]);
      const vCache = g.input(`past.v.${i}`, 'float32', [B, KV, cacheLen, D]);
      k = op.where(slot, k, kCache);
      v = op.where(slot, v, vCache);
    }
    if (opts.hooks?.attention) ({ k, v, mask: layerMask } = opts.hooks.attention({ layer: i, k, v, mask, positions, decoding: position !== undefined }));
    if (position && cacheLen) {
      cacheOut[`present.k.${i}`] = k; // prefix slots a hook wrote sit in the cache before the prompt
      cacheOut[`present.v.${i}`] = v;
    }
    const attn = nn.attention(q, k, v, layerMask); // [B, H, R, D]
    const merged = op.reshape(op.transpose(attn, [0, 2, 1, 3]), [B, R, H * D]); // [B, R, H*D]
    x = op.add(x, linear(`${p}.self_attn.o_proj`, merged, i, c.oBias));
    const h2 = nn.rmsNorm(x, param(`${p}.post_attention_layernorm.weight`), c.rmsNormEps);
    const gate = nn.silu(linear(`${p}.mlp.gate_proj`, h2, i, c.mlpBias)); // [B, R, I]
    const up = linear(`${p}.mlp.up_proj`, h2, i, c.mlpBias); // [B, R, I]
    x = op.add(x, linear(`${p}.mlp.down_proj`, op.mul(gate, up), i, c.mlpBias)); // [B, R, C]
    blockOutputs.push(x);
  }
  if (virtualRows > 0) x = op.slice(x, 1, virtualRows, R); // [B, T, C]: soft-prompt rows predict nothing
  x = nn.rmsNorm(x, param('model.norm.weight'), c.rmsNormEps);
  const headWeight = c.tieWordEmbeddings ? param('model.embed_tokens.weight') : param('lm_head.weight');
  const headSite: LinearSite = { name: 'lm_head', module: 'lm_head', layer: -1, inFeatures: c.hidden, outFeatures: c.vocabSize };
  const logits = opts.hooks?.linear && !c.tieWordEmbeddings ? opts.hooks.linear(headSite, x, headWeight, undefined) : nn.linear(x, headWeight); // [B, T, V]
  return { ids, logits, cacheOut, params, blockOutputs, lead };
}

/**
 * Adds `labels` int64 [B, T] (already shifted: labels[b, t] is the target of position t; -100 = no loss) and
 * returns the mean cross-entropy over counted positions.
 */
export function causalLMLoss(g: GraphBuilder, model: CausalLMGraph): Tensor {
  const labels = g.input('labels', 'int64', model.ids.shape);
  return nn.crossEntropy(model.logits, labels);
}
