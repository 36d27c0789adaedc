/**
 * Full fine-tuning: every weight of the base model is trainable (optionally filtered by name).
 *
 * ```ts
 * plugins: [fullFinetune()]                                  // everything
 * plugins: [fullFinetune({ exclude: 'embed_tokens' })]       // all but the embeddings
 * ```
 */
import type { Plugin } from '../../core/index.ts';
import { fullFinetuneSchema, type FullFinetuneOptions } from './config.ts';

export const FULL_FINETUNE = 'tuneforge:full';

function regex(source: string | undefined, field: string): RegExp | undefined {
  if (source === undefined) return undefined;
  try {
    return new RegExp(source);
  } catch (e) {
    throw new Error(`fullFinetune: ${field} is not a valid regular expression: ${(e as Error).message}`);
  }
}

export function fullFinetune(options: FullFinetuneOptions = {}): Plugin {
  const opts = fullFinetuneSchema.parse(options);
  const include = regex(opts.include, 'include');
  const exclude = regex(opts.exclude, 'exclude');
  const chosen = (name: string) => (!include || include.test(name)) && !exclude?.test(name);
  return {
    name: FULL_FINETUNE,
    options: opts,
    'config:validate'(ctx) {
      return ctx.model.specs.some((s) => chosen(s.name)) ? [] : ['include/exclude leave no parameter to train'];
    },
    'params:trainable'(ctx, current) {
      return new Set([...current, ...ctx.model.specs.filter((s) => chosen(s.name)).map((s) => s.name)]);
    },
  };
}

export { fullFinetuneSchema, type FullFinetuneOptions };
