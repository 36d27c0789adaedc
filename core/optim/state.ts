/**
 * Flat optimizer state dicts for checkpoints: `Record<string, Float32Array | number>`.
 *
 * Keys are `<kind>:<parameter name>` (e.g. `exp_avg:layers.0.wq`, `step:layers.0.wq`) and `hparam:<option>` for the
 * hyperparameters the state was produced with. The kind ends at the first ':' so parameter names may contain ':'.
 */

export type OptimizerStateDict = Record<string, Float32Array | number>;

/** Options of `stateDict`. */
export interface StateDictOptions {
  /**
   * Copy the state arrays (default true). With `false` the dict holds the optimizer's live arrays: cheaper for a
   * checkpoint writer that serialises them before the next update, but they change with every step.
   */
  copy?: boolean;
}

export const HPARAM = 'hparam';

export function stateKey(kind: string, name: string): string {
  return `${kind}:${name}`;
}

/** Splits a key into its kind and parameter name; throws on keys without a kind. */
export function splitStateKey(key: string, who: string): [kind: string, name: string] {
  const at = key.indexOf(':');
  if (at <= 0) throw new Error(`${who}.loadStateDict: key '${key}' is not of the form <kind>:<name>`);
  return [key.slice(0, at), key.slice(at + 1)];
}

export function stateArray(value: Float32Array | number, key: string, who: string): Float32Array {
  if (!(value instanceof Float32Array)) throw new Error(`${who}.loadStateDict: '${key}' should be a Float32Array`);
  return value;
}

export function stateCount(value: Float32Array | number, key: string, who: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new Error(`${who}.loadStateDict: '${key}' should be a positive integer step count`);
  }
  return value;
}

/** Writes hyperparameters under `hparam:<name>`. */
export function writeHparams(out: OptimizerStateDict, hparams: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(hparams)) out[stateKey(HPARAM, k)] = v;
}

/**
 * Checks a saved hyperparameter against the optimizer's own: resuming with different settings would not reproduce
 * the original run. Delete the `hparam:` key from the dict to change a setting on purpose.
 */
export function checkHparam(hparams: Readonly<Record<string, number>>, name: string, value: Float32Array | number, who: string): void {
  const own = hparams[name];
  if (own === undefined) throw new Error(`${who}.loadStateDict: unknown hyperparameter '${name}'`);
  if (value !== own) throw new Error(`${who}.loadStateDict: state was saved with ${name}=${String(value)} but this optimizer has ${name}=${own}`);
}

/** Copies a Float32Array when `copy` is set. */
export function maybeCopy(a: Float32Array, copy: boolean): Float32Array {
  return copy ? a.slice() : a;
}
