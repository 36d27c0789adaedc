/**
 * The decoder families (Llama 2/3, SmolLM, TinyLlama, Mistral, Qwen2; Qwen3, OLMo 2, SmolLM3, Gemma 2/3, Phi-3,
 * Mixtral, Qwen3-MoE) in the kernel's IR, with parameters named exactly as in Hugging Face checkpoints. One builder serves training (full sequence) and generation (one token at a time
 * against a fixed-size key/value cache).
 */
import type { GraphBuilder, Tensor } from '../ir/graph.ts';
import type { Dim } from '../ir/shape.ts';
import * as nn from '../nn/index.ts';
import * as op from '../ops/api.ts';
import type { ModelConfig } from './config.ts';
import { loadBalancingLoss, moeBlock, type MoeOutput } from './moe.ts';
import { mlpNames, paramSpecs } from './params.ts';
import { localInvFreq, longInvFreq, scaledInvFreq } from './rope-scaling.ts';

/** Where a linear layer sits, so plugins can pick targets by name (e.g. LoRA on `q_proj`, `v_proj`). */
export interface LinearSite {
  /** Hugging Face module path without `.weight`, e.g. `model.layers.3.self_attn.q_proj`. */
  name: string;
  /**
   * Last component: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or lm_head; Phi-3's qkv_proj and
   * gate_up_proj; MoE routers (`gate`) and experts (Mixtral's w1/w3/w2, Qwen3-MoE's gate_proj/up_proj/down_proj).
   */
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
  /** int64 positions of the queries: [R] over a sequence, [B, 1] when decoding, [B, T] with `positionIds`. */
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
  /**
   * int64 [B, T]: each token's position, as a decoder exported for other runtimes takes it (`position_ids`: past
   * tokens and left padding shift it). Default: 0..T−1 after `lead`. Not with `cache`, which takes `position`.
   */
  positionIds?: Tensor;
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
  /**
   * Mixtral / Qwen3-MoE with `output_router_logits`: `router_aux_loss_coef` × the load-balancing loss (a scalar),
   * for the caller to add to the cross-entropy as transformers does (`causalLMLoss` does).
   */
  auxLoss?: Tensor;
}

/**
 * Builds the forward pass into `g`. Inputs: `input_ids` int64 [B, T] and every parameter (see `hooks.param`).
 * Returns logits; losses are composed by the caller (see `causalLMLoss`). One decoder serves every family: what a
 * family changes is read from `c.family` (core/models/family.ts), and Llama takes none of those branches.
 */
export function buildCausalLM(g: GraphBuilder, c: ModelConfig, opts: CausalLMOptions): CausalLMGraph {
  const { batch: B, seq: T } = opts;
  const H = c.heads, KV = c.kvHeads, D = c.headDim, f = c.family;
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
  // Gemma stores norm weights as offsets from 1: x̂ · (1 + w).
  const norm = (x: Tensor, name: string): Tensor => nn.rmsNorm(x, f.normPlusOne ? op.add(param(`${name}.weight`), 1) : param(`${name}.weight`), c.rmsNormEps);
  const act = (x: Tensor): Tensor => (f.activation === 'silu' ? nn.silu(x) : nn.gelu(x, 'tanh'));

  const ids = g.input('input_ids', 'int64', [B, T]);
  const cacheLen = opts.cache?.maxLen;
  const position = cacheLen ? g.input('position', 'int64', [B]) : undefined; // where the (single) new token goes
  const tokens: TokenEmbeddings = { embeds: nn.embedding(param('model.embed_tokens.weight'), ids), virtualRows: 0, lead: 0, position };
  const { embeds, virtualRows, lead } = opts.hooks?.embeddings ? opts.hooks.embeddings(tokens) : tokens;
  // Gemma scales every row entering the decoder, soft-prompt rows included (PEFT passes them as inputs_embeds).
  let x = f.embedScale ? op.mul(embeds, Math.sqrt(c.hidden)) : embeds; // [B, R, C]
  const R = x.shape[1]!; // rows: T plus any soft-prompt rows
  const blockOutputs = [x];

  // Positions, rotary tables and the attention masks.
  let positions: Tensor; // [B, 1], [B, T] or [R]
  if (position) positions = op.reshape(position, [B, 1]);
  else if (opts.positionIds) positions = opts.positionIds;
  else {
    positions = op.iota(ids, [R], 0);
    if (lead !== virtualRows) positions = op.add(positions, op.scalar(positions, lead - virtualRows));
  }
  const RD = f.rotaryDim;
  const decodeShape = (t: Tensor) => (position ? op.reshape(t, [B, 1, 1, RD]) : opts.positionIds ? op.reshape(t, [B, 1, T, RD]) : t);
  const tables = (invFreq: Float64Array) => {
    const rope = nn.ropeTables(positions, invFreq); // [B, 1, RD] or [R, RD]
    return { cos: decodeShape(rope.cos), sin: decodeShape(rope.sin) };
  };
  const uses = (kind: 'global' | 'local') => f.layers.some((l) => l.rope === kind);
  let globalRope: { cos: Tensor; sin: Tensor } | undefined;
  if (uses('global')) {
    const long = longInvFreq(c);
    globalRope = tables(scaledInvFreq(c));
    if (long && c.ropeScaling.type === 'longrope') {
      // LongRoPE (transformers' dynamic update): a pass whose last position reaches original_max_position_embeddings
      // uses the long factors for every position, a shorter pass the short ones; both scaled by the attention factor.
      const s = c.ropeScaling;
      const longRope = tables(long);
      const beyond = op.greaterEqual(op.max(op.cast(positions, 'float32')), s.originalMaxPositions); // [] bool
      const pick = (a: Tensor, b: Tensor) => op.mul(op.where(beyond, a, b), s.attentionFactor);
      globalRope = { cos: pick(longRope.cos, globalRope.cos), sin: pick(longRope.sin, globalRope.sin) };
    }
  }
  const localRope = uses('local') ? tables(localInvFreq(c)) : undefined;
  const masks = new Map<number | null, Tensor>();
  const maskFor = (window: number | null): Tensor => {
    let mask = masks.get(window);
    if (mask) return mask;
    if (position && cacheLen) {
      // Key s is visible from the new token at p when s <= p (and within the sliding window).
      const s = op.iota(ids, [B, 1, 1, cacheLen], 3);
      const p = op.reshape(position, [B, 1, 1, 1]);
      let visible = op.cast(op.lessEqual(s, p), 'float32');
      if (window) visible = op.mul(visible, op.cast(op.greater(op.cast(s, 'float32'), op.sub(op.cast(p, 'float32'), window)), 'float32'));
      mask = op.mul(op.sub(1, visible), nn.MASKED); // 0 visible, MASKED hidden  [B, 1, 1, S]
    } else {
      mask = nn.causalMask(x, R, R);
      if (window) {
        const t = op.iota(ids, [R, R], 0, 'float32'), s = op.iota(ids, [R, R], 1, 'float32'); // sub is float-only
        const tooFar = op.cast(op.lessEqual(s, op.sub(t, window)), 'float32');
        mask = op.add(mask, op.mul(tooFar, nn.MASKED));
      }
    }
    masks.set(window, mask);
    return mask;
  };
  for (const l of f.layers) maskFor(l.slidingWindow); // built once, before the layers

  const cacheOut: Record<string, Tensor> = {};
  const moeBlocks: MoeOutput[] = [];
  const heads = (y: Tensor, n: number) => op.transpose(op.reshape(y, [B, R, n, D]), [0, 2, 1, 3]); // [B, n, R, D]
  // Rotary embedding on the first RD dims of each head (all of them except Phi-3's partial rotary).
  const rotate = (y: Tensor, rope: { cos: Tensor; sin: Tensor }): Tensor => {
    if (RD === D) return nn.applyRope(y, rope.cos, rope.sin);
    return op.concat([nn.applyRope(op.slice(y, -1, 0, RD), rope.cos, rope.sin), op.slice(y, -1, RD, D)], -1);
  };
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}`;
    const layer = f.layers[i]!;
    const rope = layer.rope === 'global' ? globalRope : layer.rope === 'local' ? localRope : undefined;
    const h = f.blockNorms === 'post' ? x : norm(x, `${p}.input_layernorm`); // [B, R, C]
    // Phi-3: one qkv_proj whose output is q, then k, then v.
    const qkv = f.fused ? linear(`${p}.self_attn.qkv_proj`, h, i, c.qkvBias) : undefined; // [B, R, (H+2KV)·D]
    const project = (which: 'q' | 'k' | 'v', n: number): Tensor => {
      const start = which === 'q' ? 0 : which === 'k' ? H * D : (H + KV) * D;
      let y = qkv ? op.slice(qkv, -1, start, start + n * D) : linear(`${p}.self_attn.${which}_proj`, h, i, c.qkvBias); // [B, R, n·D]
      if (which === 'v') return heads(y, n);
      if (f.qkNorm === 'projection') y = norm(y, `${p}.self_attn.${which}_norm`); // OLMo 2: over all heads at once
      let hd = heads(y, n); // [B, n, R, D]
      if (f.qkNorm === 'head') hd = norm(hd, `${p}.self_attn.${which}_norm`); // Qwen3, Gemma 3: per head
      return rope ? rotate(hd, rope) : hd;
    };
    const q = project('q', H); // [B, H, R, D]
    let k = project('k', KV); // [B, KV, R, D]
    let v = project('v', KV); // [B, KV, R, D]
    const mask = maskFor(layer.slidingWindow);
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
    const attn = nn.attention(q, k, v, layerMask, f.attnScale ?? undefined, f.attnSoftcap); // [B, H, R, D]
    const merged = op.reshape(op.transpose(attn, [0, 2, 1, 3]), [B, R, H * D]); // [B, R, H*D]
    const attnOut = linear(`${p}.self_attn.o_proj`, merged, i, c.oBias); // [B, R, C]
    let mlpIn: Tensor;
    if (f.blockNorms === 'pre') {
      x = op.add(x, attnOut);
      mlpIn = norm(x, `${p}.post_attention_layernorm`);
    } else {
      // Gemma and OLMo 2 normalise the attention output itself; Gemma also the MLP's input.
      x = op.add(x, norm(attnOut, `${p}.post_attention_layernorm`));
      mlpIn = f.blockNorms === 'sandwich' ? norm(x, `${p}.pre_feedforward_layernorm`) : x;
    }
    const names = mlpNames(c, i);
    let mlpOut: Tensor; // [B, R, C]
    if (names.kind === 'moe') {
      const block = moeBlock(mlpIn, f.moe!, names, (name, y) => linear(name, y, i, false), act);
      moeBlocks.push(block);
      mlpOut = block.out;
    } else {
      let gate: Tensor, up: Tensor; // [B, R, I]
      if (f.fused) {
        const gateUp = linear(names.gateUp, mlpIn, i, c.mlpBias); // [B, R, 2I]: gate first
        gate = act(op.slice(gateUp, -1, 0, c.intermediate));
        up = op.slice(gateUp, -1, c.intermediate, 2 * c.intermediate);
      } else {
        gate = act(linear(names.gate, mlpIn, i, c.mlpBias));
        up = linear(names.up, mlpIn, i, c.mlpBias);
      }
      mlpOut = linear(names.down, op.mul(gate, up), i, c.mlpBias);
    }
    x = op.add(x, f.blockNorms === 'pre' ? mlpOut : norm(mlpOut, `${p}.post_feedforward_layernorm`)); // [B, R, C]
    blockOutputs.push(x);
  }
  if (virtualRows > 0) x = op.slice(x, 1, virtualRows, R); // [B, T, C]: soft-prompt rows predict nothing
  x = norm(x, 'model.norm');
  const headWeight = c.tieWordEmbeddings ? param('model.embed_tokens.weight') : param('lm_head.weight');
  const headSite: LinearSite = { name: 'lm_head', module: 'lm_head', layer: -1, inFeatures: c.hidden, outFeatures: c.vocabSize };
  let logits = opts.hooks?.linear && !c.tieWordEmbeddings ? opts.hooks.linear(headSite, x, headWeight, undefined) : nn.linear(x, headWeight); // [B, T, V]
  if (f.finalSoftcap) logits = nn.softCap(logits, f.finalSoftcap);
  const moe = f.moe;
  const auxLoss = moe?.auxLossCoef != null && moeBlocks.length ? op.mul(loadBalancingLoss(moeBlocks, moe.experts), moe.auxLossCoef) : undefined;
  return { ids, logits, cacheOut, params, blockOutputs, lead, auxLoss };
}

/**
 * Adds `labels` int64 [B, T] (already shifted: labels[b, t] is the target of position t; -100 = no loss) and
 * returns the mean cross-entropy over counted positions, plus the MoE load-balancing term when the model has one.
 */
export function causalLMLoss(g: GraphBuilder, model: CausalLMGraph): Tensor {
  const labels = g.input('labels', 'int64', model.ids.shape);
  const ce = nn.crossEntropy(model.logits, labels);
  return model.auxLoss ? op.add(ce, model.auxLoss) : ce;
}
