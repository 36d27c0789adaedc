/** The built-in plugins, by the short names a JSON config may use (`"plugins": ["lora"]`). */
import type { PluginFactory } from '../core/train/load-config.ts';
import { fullFinetune } from './full/index.ts';
import { lora } from './lora/index.ts';

export const BUILTIN_PLUGINS: Readonly<Record<string, PluginFactory>> = {
  full: (options) => fullFinetune(options),
  lora: (options) => lora(options),
};

export { fullFinetune, lora };
