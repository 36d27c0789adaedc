/**
 * How each technique reads its PEFT adapter folder. A format turns `adapter_config.json` into a plugin that rebuilds
 * the adapter's computation with graph inputs named exactly as the file's tensors (keys without `base_model.model.`),
 * so `readAdapter` (read.ts) can hand the file's values to the run as the initial parameters.
 */
import type { z } from 'zod';
import type { HostTensor, Plugin } from '../../core/index.ts';

export interface PeftFormat {
  /** The `peft_type` values this format reads (`LORA`, `ADALORA`, ...). */
  readonly types: readonly string[];
  /**
   * The plugin that computes this adapter. `config` is the parsed `adapter_config.json`, `tensors` the file's tensors
   * by graph-input name (for shapes, e.g. pruned AdaLoRA ranks), `where` the config's path for error messages.
   * Throws an `AdapterConfigError` naming the field when the config is malformed.
   */
  plugin(config: Readonly<Record<string, unknown>>, tensors: ReadonlyMap<string, HostTensor>, where: string): Plugin;
}

/** A malformed or unsupported adapter config: names the file and the field. */
export class AdapterConfigError extends Error {
  constructor(where: string, field: string, problem: string) {
    super(`${where}: field '${field}': ${problem}`);
    this.name = 'AdapterConfigError';
  }
}

/**
 * Parses an adapter config with a zod schema (use `.passthrough()` or `.loose()`: PEFT writes many fields a format
 * ignores). Every problem is reported at once, each with its field path.
 */
export function parseAdapterConfig<S extends z.ZodType>(schema: S, raw: Readonly<Record<string, unknown>>, where: string): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `field '${i.path.join('.') || '(root)'}': ${i.message}`);
  throw Object.assign(new Error(`${where}: ${lines.join('; ')}`), { name: 'AdapterConfigError' });
}
