/**
 * Outputs held for the next run ("feedback"): a step's updated state (new weights, moments) feeds its own next run
 * without leaving the runner. onnxruntime-web holds them in GPU buffers itself (runners/ort-web.ts); `holdOutputs`
 * gives any session the same contract in the memory of the process that runs it, which is what the sidecar does, so
 * a training state fed back stays on the sidecar between steps.
 */
import type { HostTensor } from '../core/ir/host.ts';
import type { CompiledStep, RunnerSession } from './types.ts';

/** A session that holds fed-back outputs: `run` does not return them and serves them to inputs left out. */
export interface HoldingSession extends RunnerSession {
  /** The tensor held for a fed-back input (the last run's output that feeds it). */
  readHeld(input: string): Promise<HostTensor>;
}

export const holds = (s: RunnerSession): s is HoldingSession => typeof (s as Partial<HoldingSession>).readHeld === 'function';

/**
 * Tensors held between runs by several sessions (a training run's parameters and moments, read by the step of
 * every batch shape and written by the update), by the input name they feed. Sessions loaded with the same store
 * share it; its owner frees it (a runner's store lives as long as a session uses it). `id` names it to a sidecar.
 */
export class TensorStore {
  readonly tensors = new Map<string, HostTensor>();
  constructor(readonly id: string = crypto.randomUUID()) {}

  bytes(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t.data.byteLength;
    return n;
  }
}

/**
 * Pairs that name no output or input of the step, or join an output to an input of another type: `out -> in (why)`.
 * With a store (`shared`) an output may go to a name that is no input of this step: another session reads it.
 */
export function badFeedback(step: Pick<CompiledStep, 'inputs' | 'outputs'>, feedback: Readonly<Record<string, string>>, shared = false): string[] {
  const bad: string[] = [];
  for (const [o, i] of Object.entries(feedback)) {
    const out = step.outputs.find((x) => x.name === o), inp = step.inputs.find((x) => x.name === i);
    if (!out || (!inp && !shared)) bad.push(`${o} -> ${i} (${!out ? 'no such output' : 'no such input'})`);
    else if (!inp) continue;
    else if (out.dtype !== inp.dtype || out.dims.join() !== inp.dims.join()) bad.push(`${o} -> ${i} (${out.dtype}[${out.dims}] into ${inp.dtype}[${inp.dims}])`);
  }
  const inputs = Object.values(feedback);
  for (const i of new Set(inputs)) if (inputs.indexOf(i) !== inputs.lastIndexOf(i)) bad.push(`two outputs feed '${i}'`);
  return bad;
}

/**
 * The pairs a load holds, the runner's own and the load's (a load's pair wins for the same output), checked
 * against the step; `who` names the runner in the error.
 */
export function loadFeedback(
  step: Pick<CompiledStep, 'inputs' | 'outputs'>, who: string, shared: boolean, ...sources: (Readonly<Record<string, string>> | undefined)[]
): Record<string, string> {
  const feedback: Record<string, string> = Object.assign({}, ...sources);
  const bad = badFeedback(step, feedback, shared);
  if (bad.length) throw new Error(`${who}: feedback pairs that do not fit the step: ${bad.join(', ')}`);
  return feedback;
}

/**
 * `session` with `feedback` (`{ output: input }`) held in this process: each run's fed-back outputs are kept, not
 * returned, and fed to their inputs on the next run unless that run feeds them itself (a fed value wins: that is how
 * state is seeded or replaced). `who` names the holder in errors. `account`, when given, is told each change of the
 * bytes held (positive: more) before it happens, and may refuse it by throwing: the run's outputs are then dropped
 * and what was held stays.
 *
 * With a `store`, what is held lives there, shared with the other sessions of the store: any input a run leaves out
 * is served from it when it has that name (with the input's dtype and shape), and releasing the session leaves it.
 * Outputs in `inPlace` are written over the held tensor they replace (LoadOptions.inPlace).
 */
export function holdOutputs(
  session: RunnerSession, step: Pick<CompiledStep, 'inputs' | 'outputs'>, feedback: Readonly<Record<string, string>>, who: string,
  account: (deltaBytes: number) => void = () => {}, store?: TensorStore, inPlace: readonly string[] = [],
): HoldingSession {
  const overwrite = new Set(inPlace);
  const pairs = Object.entries(loadFeedback(step, who, store !== undefined, feedback));
  const held = store?.tensors ?? new Map<string, HostTensor>(); // input name -> the output of the previous run that feeds it
  // The inputs a run may leave out: those fed back, and with a store every input it may hold.
  const servable = store ? step.inputs.map((i) => i.name) : [...new Set(pairs.map(([, input]) => input))];
  return {
    async run(feeds, options) {
      const all: Record<string, HostTensor> = { ...feeds };
      const missing: string[] = [];
      for (const input of servable) {
        if (all[input]) continue;
        const h = held.get(input);
        if (h) all[input] = h;
        else if (!store || pairs.some(([, i]) => i === input)) missing.push(input);
      }
      if (store) checkServed(step, all, feeds, who);
      if (missing.length) throw new Error(`${who}: inputs neither fed nor held from a previous run: ${missing.join(', ')}`);
      // A held output stays the session's own: it is not written into a caller's tensor; `inPlace` ones are
      // written over the held tensor this run was served, where the session can write into one (onnxruntime-node).
      const into: Record<string, HostTensor> = Object.fromEntries(Object.entries(options?.into ?? {}).filter(([name]) => !(name in feedback)));
      for (const [output, input] of pairs) if (overwrite.has(output) && !feeds[input] && all[input]) into[output] = all[input]!;
      const out = await session.run(all, Object.keys(into).length ? { into } : {});
      let delta = 0;
      for (const [output, input] of pairs) {
        const next = out[output];
        if (!next) throw new Error(`${who}: the run returned no '${output}' to feed back as '${input}'`);
        delta += next.data.byteLength - (held.get(input)?.data.byteLength ?? 0);
      }
      account(delta);
      for (const [output, input] of pairs) {
        held.set(input, out[output]!);
        delete out[output];
      }
      return out;
    },
    async readHeld(input) {
      const t = held.get(input);
      if (!t) throw new Error(`${who}: nothing held for input '${input}' (held: ${[...held.keys()].join(', ') || 'none'})`);
      return t;
    },
    async release() {
      if (!store) {
        account(-[...held.values()].reduce((n, t) => n + t.data.byteLength, 0));
        held.clear();
      }
      await session.release();
    },
  };
}

/** A store's tensors served to a session's inputs must fit them (another session may have put a different one). */
function checkServed(step: Pick<CompiledStep, 'inputs'>, all: Readonly<Record<string, HostTensor>>, fed: Readonly<Record<string, HostTensor>>, who: string): void {
  const bad: string[] = [];
  for (const i of step.inputs) {
    const t = all[i.name];
    if (!t || fed[i.name]) continue;
    if (t.dtype !== i.dtype || t.shape.join() !== i.dims.join()) bad.push(`'${i.name}' holds ${t.dtype}[${t.shape}], the input is ${i.dtype}[${i.dims}]`);
  }
  if (bad.length) throw new Error(`${who}: stored tensors that do not fit this step: ${bad.join('; ')}`);
}
