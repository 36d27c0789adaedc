/**
 * Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation"): every attention
 * layer gets `virtualTokens` trainable key/value slots in front of the sequence's own; the model stays frozen. Laid
 * out as PEFT lays it out, so adapters move between PEFT and tuneforge both ways.
 *
 * ```ts
 * plugins: [prefix({ virtualTokens: 20 })]
 * ```
 */
import type { GraphBuilder, HostTensor, ModelConfig, Plugin, Tensor } from '../../core/index.ts';
import { initEncoderParams, type Encoder } from '../prompt/encoders.ts';
import { prefixSchema, type PrefixConfig, type PrefixOptions } from './config.ts';
import { prefixEncoder } from './encoder.ts';
import { exportPrefix } from './export.ts';
import { prefixSlots, prependSlots, slot, tokenDim, widenMask, writeSlots } from './layout.ts';

export const PREFIX = 'tuneforge:prefix';

export interface PrefixApi {
  readonly config: PrefixConfig;
  /** The prefix's trainable parameters for a model: the table, or the projection MLP. */
  encoder(model: ModelConfig): Encoder;
}

export function prefix(options: PrefixOptions = {}): Plugin<PrefixApi> {
  const config = prefixSchema.parse(options);
  const nvt = config.virtualTokens;
  const encoder = (c: ModelConfig) => prefixEncoder(c, config);

  // The slot view [L·2, KV, nvt, D] of the prefix, built once per traced graph and shared by its layers.
  const built = new WeakMap<GraphBuilder, Tensor>();
  const slotsOf = (g: GraphBuilder, c: ModelConfig): Tensor => {
    let s = built.get(g);
    if (!s) {
      s = prefixSlots(encoder(c).build(g, (name, shape) => g.input(name, 'float32', shape)), c);
      built.set(g, s);
    }
    return s;
  };

  return {
    name: PREFIX,
    options: config,
    mergeable: false,
    conflicts: ['tuneforge:prompt'],
    api: { config, encoder },

    'config:validate'(ctx) {
      const c = ctx.model.config;
      const problems: string[] = [];
      if (nvt >= c.maxPositions) problems.push(`virtualTokens ${nvt} leaves no position for tokens: the model has ${c.maxPositions}`);
      if (c.slidingWindow) problems.push('prefix slots with sliding-window attention are not supported (PEFT lets every query see the whole prefix)');
      return problems;
    },

    'model:embeddings'(_ctx, e, next) {
      const r = next(e);
      return { ...r, lead: r.lead + nvt }; // real tokens sit after the prefix, as PEFT's past length puts them
    },

    'model:attention'(ctx, a, next) {
      const r = next(a);
      const all = slotsOf(r.k.builder, ctx.model.config); // [L·2, KV, nvt, D]
      const pk = slot(all, 2 * r.layer), pv = slot(all, 2 * r.layer + 1); // [1, KV, nvt, D]
      if (r.decoding) return { ...r, k: writeSlots(pk, r.k), v: writeSlots(pv, r.v) };
      return { ...r, k: prependSlots(pk, r.k), v: prependSlots(pv, r.v), mask: widenMask(r.mask, nvt) };
    },

    'params:init'(ctx, pending) {
      const wanted = new Set(pending.map((p) => p.name));
      const values = new Map<string, HostTensor>();
      for (const [name, t] of initEncoderParams(encoder(ctx.model.config).params, ctx.run.seed)) if (wanted.has(name)) values.set(name, t);
      return values;
    },

    'params:trainable'(ctx, current) {
      return new Set([...current, ...encoder(ctx.model.config).params.map((p) => p.name)]);
    },

    async 'export:artifacts'(ctx, dir, trained) {
      return exportPrefix(ctx, `${dir}/adapter`, trained, config, encoder(ctx.model.config));
    },
  };
}

export { prefixSchema, tokenDim, type PrefixOptions, type PrefixConfig };
