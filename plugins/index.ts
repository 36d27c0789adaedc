/** The built-in plugins, by the short names a JSON config may use (`"plugins": ["lora"]`). */
import type { PluginFactory } from '../core/train/load-config.ts';
import { adalora } from './adalora/index.ts';
import { adapters } from './adapters/index.ts';
import { forwardGrad } from './forward-grad/index.ts';
import { fullFinetune } from './full/index.ts';
import { lisa } from './lisa/index.ts';
import { lora } from './lora/index.ts';
import { nf4 } from './nf4/index.ts';
import { prefix } from './prefix/index.ts';
import { prompt, pTuning } from './prompt/index.ts';
import { zo } from './zo/index.ts';

export const BUILTIN_PLUGINS: Readonly<Record<string, PluginFactory>> = {
  full: (options) => fullFinetune(options),
  lora: (options) => lora(options),
  lisa: (options) => lisa(options),
  nf4: (options) => nf4(options),
  zo: (options) => zo(options),
  'forward-grad': (options) => forwardGrad(options),
  adalora: (options) => adalora(options),
  adapters: (options) => adapters(options),
  prefix: (options) => prefix(options),
  prompt: (options) => prompt(options),
  'p-tuning': (options) => pTuning(options),
};

export { adalora, adapters, forwardGrad, fullFinetune, lisa, lora, nf4, prefix, prompt, pTuning, zo };
