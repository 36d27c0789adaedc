/**
 * What the device optimizer's two update paths share (the tensors of a step, the graphs' cache, the state), and
 * the path of a runner in this process: each tensor updated in pieces, every output written over the array it
 * replaces. device-held.ts is the other path, for runners that hold outputs.
 */
import type { HostTensor } from '../ir/host.ts';
import type { GraphCache } from './device-cache.ts';
import { momentSlots, updateGraph, type UpdateRule } from './device-graph.ts';
import type { ParamState } from './device-state.ts';

/** One tensor of an update: its parameter and gradient arrays, and its weight decay (0: none). */
export interface Entry { name: string; param: Float32Array; grad: Float32Array; weightDecay: number }

/** The optimizer as the paths see it. */
export interface UpdateEnv {
  readonly rule: UpdateRule;
  /** Whether the state counts steps per tensor (AdamW's bias correction). */
  readonly counted: boolean;
  readonly cache: GraphCache;
  /** Write the clipped gradients back into the gradient arrays. */
  readonly clippedGrads: boolean;
  /** The host state (replaced when a state dict is loaded). */
  state(): ParamState;
  /** COEFFICIENTS of each entry, in order, for this learning rate. */
  coefficients(entries: readonly Pick<Entry, 'name' | 'weightDecay'>[], lr: number): Float32Array;
  /** The global norm of these gradients and the clip scale for `maxNorm`, from the norm graph. */
  clipScale(grads: readonly Float32Array[], maxNorm: number): Promise<{ norm: number; scale: HostTensor }>;
}

export const f32 = (data: Float32Array): HostTensor => ({ dtype: 'float32', shape: [data.length], data });

/** Elements [start, end) of an entry's tensors. */
interface Piece { entry: Entry; start: number; end: number }

/** An entry cut into pieces of at most `size` elements, in order. */
function piecesOf(entry: Entry, size: number): Piece[] {
  return Array.from({ length: Math.ceil(entry.param.length / size) }, (_, k) => ({
    entry, start: k * size, end: Math.min((k + 1) * size, entry.param.length),
  }));
}

/**
 * The update in this process: piece by piece (at most `pieceElements` each), one graph per piece length, each run's
 * outputs written over the arrays they replace. Moments start as zeros in the host state on a tensor's first update.
 */
export async function updateInPlace(env: UpdateEnv, entries: readonly Entry[], lr: number, maxNorm: number | null, pieceElements: number): Promise<{ norm?: number }> {
  const byEntry = entries.map((e) => piecesOf(e, pieceElements));
  const pieces = byEntry.flat();
  env.cache.reserve(2 * (new Set(pieces.map((p) => `${p.end - p.start}|${p.entry.weightDecay !== 0}`)).size + 1));
  const view = (a: Float32Array, p: Piece) => a.subarray(p.start, p.end);
  const clip = maxNorm === null ? undefined : await env.clipScale(pieces.map((p) => view(p.entry.grad, p)), maxNorm);
  const clippedGrads = env.clippedGrads && clip !== undefined;
  const slots = momentSlots(env.rule);
  const state = env.state();
  for (const [i, e] of entries.entries()) {
    const coef = f32(env.coefficients([e], lr)); // before the moments exist: SGD's first step is told so
    const moments = slots.map((_, j) => {
      const own = state.arrays[j]!;
      if (!own.has(e.name)) own.set(e.name, new Float32Array(e.param.length));
      return own.get(e.name)!;
    });
    const decayed = e.weightDecay !== 0;
    for (const piece of byEntry[i]!) {
      const n = piece.end - piece.start;
      const exe = await env.cache.get(`piece|${clip ? 'scale' : 'none'}|${clippedGrads}|${n}|${Number(decayed)}`,
        () => updateGraph({ rule: env.rule, lengths: [n], decayed: [decayed], clip: clip ? 'scale' : 'none', clippedGrads }));
      const feeds: Record<string, HostTensor> = { coef, p0: f32(view(e.param, piece)), g0: f32(view(e.grad, piece)), ...(clip ? { scale: clip.scale } : {}) };
      slots.forEach((slot, j) => { feeds[`${slot}0`] = f32(view(moments[j]!, piece)); });
      // Each output goes over the input it replaces: the graph reads an element of it before writing that element.
      const into: Record<string, HostTensor> = { new_p0: feeds.p0! };
      for (const slot of slots) into[`new_${slot}0`] = feeds[`${slot}0`]!;
      if (clippedGrads) into.new_g0 = feeds.g0!;
      await exe.run(feeds, { into });
    }
    if (env.counted) state.steps.set(e.name, (state.steps.get(e.name) ?? 0) + 1);
  }
  return clip ? { norm: clip.norm } : {};
}
