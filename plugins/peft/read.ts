/**
 * One reader for every PEFT adapter folder: `adapter_config.json`'s `peft_type` picks the technique's format, which
 * builds the plugin that computes the adapter; the file's tensors become that plugin's initial parameters. The result
 * plugs into everything a run does: `grads`, `eval`, `generate`, and `train` (which continues from the adapter).
 */
import type { HostTensor, PendingParam, Plugin } from '../../core/index.ts';
import { AdapterConfigError, type PeftFormat } from './format.ts';
import { readAdapterFolder } from './folder.ts';
import { PEFT_FORMATS } from './formats.ts';

export interface LoadedAdapter {
  peftType: string;
  /** The plugin computing the adapter; its `params:init` hands out the file's tensors. */
  plugin: Plugin;
  /** The file's tensors by graph-input name (without `base_model.model.`). */
  tensors: Map<string, HostTensor>;
  config: Record<string, unknown>;
}

/** The format for a `peft_type`, or an error listing the ones this build reads. */
export function peftFormat(peftType: unknown, where: string, formats: readonly PeftFormat[] = PEFT_FORMATS): PeftFormat {
  const known = formats.flatMap((f) => f.types);
  if (typeof peftType !== 'string') throw new AdapterConfigError(where, 'peft_type', `missing or not a string; expected one of ${known.join(', ')}`);
  const format = formats.find((f) => f.types.includes(peftType));
  if (!format) throw new AdapterConfigError(where, 'peft_type', `'${peftType}' is not supported; supported: ${known.join(', ')}`);
  return format;
}

/** Wraps `plugin` so the file's values replace its initialisation, checking that each one has an input to go to. */
export function withInitialValues(plugin: Plugin, tensors: ReadonlyMap<string, HostTensor>, where: string): Plugin {
  const own = plugin['params:init'];
  return {
    ...plugin,
    async 'params:init'(ctx, pending: readonly PendingParam[], base) {
      const values = new Map((await own?.call(plugin, ctx, pending, base)) ?? []);
      const byName = new Map(pending.map((p) => [p.name, p]));
      const unused = [...tensors.keys()].filter((n) => !byName.has(n));
      if (unused.length) throw new Error(`${where}: tensors that match no input of the model's graph: ${unused.slice(0, 5).join(', ')}${unused.length > 5 ? `, ... (${unused.length})` : ''}`);
      for (const [name, t] of tensors) {
        const want = byName.get(name)!.shape;
        if (t.shape.join() !== want.join()) throw new Error(`${where}: tensor '${name}' is [${t.shape}], the model's graph expects [${want}]`);
        values.set(name, t);
      }
      return values;
    },
  };
}

export async function readAdapter(dir: string): Promise<LoadedAdapter> {
  const { configPath, config, tensors } = await readAdapterFolder(dir);
  const format = peftFormat(config.peft_type, configPath);
  const task = config.task_type;
  if (task !== undefined && task !== null && task !== 'CAUSAL_LM') throw new AdapterConfigError(configPath, 'task_type', `'${String(task)}' is not supported; tuneforge trains causal language models (CAUSAL_LM)`);
  const plugin = withInitialValues(format.plugin(config, tensors, configPath), tensors, dir);
  return { peftType: config.peft_type as string, plugin, tensors, config };
}
