/**
 * Prompt tuning (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning") and P-tuning (Liu et
 * al. 2021, "GPT Understands, Too"): `virtualTokens` trainable vectors go before every input; the model stays frozen.
 * Prompt tuning trains the vectors themselves; P-tuning produces them with an MLP or bidirectional-LSTM encoder.
 * Exports PEFT's `prompt_embeddings` (the vectors, never the encoder).
 *
 * ```ts
 * plugins: [prompt({ virtualTokens: 20, init: 'text', initText: 'Is this review positive?' })]
 * plugins: [pTuning({ virtualTokens: 20, encoder: 'lstm' })]
 * ```
 */
import type { GraphBuilder, HostTensor, ModelConfig, Plugin, Tensor } from '../../core/index.ts';
import { promptSchema, type PromptConfig, type PromptOptions } from './config.ts';
import { prependPrompt } from './embeddings.ts';
import { initEncoderParams, type Encoder } from './encoders.ts';
import { exportPrompt } from './export.ts';
import { embeddingRows, initTokenIds, promptEncoder } from './table.ts';

export const PROMPT = 'tuneforge:prompt';

export interface PromptApi {
  readonly config: PromptConfig;
  /** The soft prompt's source for a model: the table, or the P-tuning encoder. */
  encoder(model: ModelConfig): Encoder;
}

export function prompt(options: PromptOptions = {}): Plugin<PromptApi> {
  const config = promptSchema.parse(options);
  const encoder = (c: ModelConfig) => promptEncoder(c, config);
  const built = new WeakMap<GraphBuilder, Tensor>(); // the soft prompt [nvt, C] of each traced graph

  return {
    name: PROMPT,
    options: config,
    mergeable: false,
    conflicts: ['tuneforge:prefix'],
    api: { config, encoder },

    'config:validate'(ctx) {
      const c = ctx.model.config;
      return config.virtualTokens >= c.maxPositions ? [`virtualTokens ${config.virtualTokens} leaves no position for tokens: the model has ${c.maxPositions}`] : [];
    },

    'model:embeddings'(ctx, e, next) {
      const r = next(e);
      const g = r.embeds.builder;
      let table = built.get(g);
      if (!table) {
        table = encoder(ctx.model.config).build(g, (name, shape) => g.input(name, 'float32', shape)); // [nvt, C]
        built.set(g, table);
      }
      return prependPrompt(r, table);
    },

    async 'params:init'(ctx, pending, base) {
      const wanted = new Set(pending.map((p) => p.name));
      const c = ctx.model.config;
      const values = new Map<string, HostTensor>();
      const enc = encoder(c);
      if (config.init !== 'random' && base) {
        values.set(enc.params[0]!.name, await embeddingRows(base, initTokenIds(ctx, config), c.hidden));
        return values;
      }
      for (const [name, t] of initEncoderParams(enc.params, ctx.run.seed)) if (wanted.has(name)) values.set(name, t);
      return values;
    },

    'params:trainable'(ctx, current) {
      return new Set([...current, ...encoder(ctx.model.config).params.map((p) => p.name)]);
    },

    async 'export:artifacts'(ctx, dir, trained) {
      return exportPrompt(ctx, `${dir}/adapter`, trained, config, encoder(ctx.model.config));
    },
  };
}

/** P-tuning: `prompt()` with an encoder (default the MLP, PEFT's default). */
export function pTuning(options: Omit<PromptOptions, 'encoder'> & { encoder?: 'mlp' | 'lstm' } = {}): Plugin<PromptApi> {
  return prompt({ ...options, encoder: options.encoder ?? 'mlp' });
}

export { promptSchema, type PromptOptions, type PromptConfig };
