/** The built-in plugins, by the short names a JSON config may use (`"plugins": ["lora"]`). */
import type { z } from 'zod';
import type { PluginFactory } from '../core/train/load-config.ts';
import { adalora, adaloraSchema } from './adalora/index.ts';
import { adapters, adaptersSchema } from './adapters/index.ts';
import { forwardGrad, forwardGradSchema } from './forward-grad/index.ts';
import { fullFinetune, fullFinetuneSchema } from './full/index.ts';
import { int8, int8Schema } from './int8/index.ts';
import { lisa, lisaSchema } from './lisa/index.ts';
import { lora, loraSchema } from './lora/index.ts';
import { nf4, nf4Schema } from './nf4/index.ts';
import { prefix, prefixSchema } from './prefix/index.ts';
import { prompt, promptSchema, pTuning } from './prompt/index.ts';
import { zo, zoSchema } from './zo/index.ts';

export const BUILTIN_PLUGINS: Readonly<Record<string, PluginFactory>> = {
  full: (options) => fullFinetune(options),
  lora: (options) => lora(options),
  lisa: (options) => lisa(options),
  nf4: (options) => nf4(options),
  int8: (options) => int8(options),
  zo: (options) => zo(options),
  'forward-grad': (options) => forwardGrad(options),
  adalora: (options) => adalora(options),
  adapters: (options) => adapters(options),
  prefix: (options) => prefix(options),
  prompt: (options) => prompt(options),
  'p-tuning': (options) => pTuning(options),
};

/** Each built-in's options schema (what `tuneforge plugins` prints as JSON Schema). */
export const BUILTIN_SCHEMAS: Readonly<Record<keyof typeof BUILTIN_PLUGINS & string, z.ZodType>> = {
  full: fullFinetuneSchema, lora: loraSchema, lisa: lisaSchema, nf4: nf4Schema, int8: int8Schema, zo: zoSchema, 'forward-grad': forwardGradSchema,
  adalora: adaloraSchema, adapters: adaptersSchema, prefix: prefixSchema, prompt: promptSchema, 'p-tuning': promptSchema,
};

export { adalora, adapters, forwardGrad, fullFinetune, int8, lisa, lora, nf4, prefix, prompt, pTuning, zo };
