/**
 * The per-parameter state of the device optimizer in the JavaScript optimizers' checkpoint format, so the two
 * interchange: AdamW `exp_avg:<name>`, `exp_avg_sq:<name>`, `step:<name>`; SGD `momentum_buffer:<name>`; both
 * `hparam:<option>` (state.ts). Loading validates everything before anything is replaced, with the same rules.
 */
import {
  HPARAM, checkHparam, maybeCopy, splitStateKey, stateArray, stateCount, stateKey, writeHparams,
  type OptimizerStateDict,
} from './state.ts';

/** What one algorithm keeps per parameter. */
export interface StateLayout {
  /** Name used in error messages. */
  readonly who: string;
  /** State dict kinds of the arrays, in the reference optimizer's order (`exp_avg`, `exp_avg_sq`). */
  readonly kinds: readonly string[];
  /** Whether a per-parameter step count (`step:<name>`) is kept. */
  readonly counted: boolean;
  /** Hyperparameters written under `hparam:` and checked on load. */
  readonly hparams: Readonly<Record<string, number>>;
}

/** The state itself: one map per kind (same order as `layout.kinds`), and the step counts. */
export interface ParamState {
  arrays: Map<string, Float32Array>[];
  steps: Map<string, number>;
}

export const emptyState = (layout: StateLayout): ParamState => ({ arrays: layout.kinds.map(() => new Map()), steps: new Map() });

export function saveState(layout: StateLayout, state: ParamState, copy: boolean): OptimizerStateDict {
  const out: OptimizerStateDict = {};
  const first = state.arrays[0];
  // Momentum-free SGD keeps no arrays: only the hyperparameters are written, as sgd.ts does.
  for (const name of first?.keys() ?? []) {
    layout.kinds.forEach((kind, j) => { out[stateKey(kind, name)] = maybeCopy(state.arrays[j]!.get(name)!, copy); });
    if (layout.counted) out[stateKey('step', name)] = state.steps.get(name)!;
  }
  writeHparams(out, layout.hparams);
  return out;
}

export function loadState(layout: StateLayout, dict: OptimizerStateDict): ParamState {
  const { who } = layout;
  const state = emptyState(layout);
  for (const [key, value] of Object.entries(dict)) {
    const [kind, name] = splitStateKey(key, who);
    const j = layout.kinds.indexOf(kind);
    if (j >= 0) state.arrays[j]!.set(name, stateArray(value, key, who).slice());
    else if (layout.counted && kind === 'step') state.steps.set(name, stateCount(value, key, who));
    else if (kind === HPARAM) checkHparam(layout.hparams, name, value, who);
    else throw new Error(`${who}.loadStateDict: unknown key '${key}' (is this another optimizer's state?)`);
  }
  const names = new Set([...state.arrays.flatMap((a) => [...a.keys()]), ...state.steps.keys()]);
  const needs = [...layout.kinds, ...(layout.counted ? ['step'] : [])];
  for (const name of names) {
    const arrays = state.arrays.map((a) => a.get(name));
    if (arrays.some((a) => !a) || (layout.counted && !state.steps.has(name))) {
      throw new Error(`${who}.loadStateDict: '${name}' needs ${needs.slice(0, -1).join(', ')}${needs.length > 1 ? ' and ' : ''}${needs.at(-1)}`);
    }
    const lengths = arrays.map((a) => a!.length);
    if (lengths.some((n) => n !== lengths[0])) {
      throw new Error(`${who}.loadStateDict: '${name}' has ${layout.kinds.map((k, j) => `${k} of ${lengths[j]}`).join(' but ')}`);
    }
  }
  return state;
}
