/**
 * The optimizer update fused into the gradient graph, for a runner that keeps the training state (the trainer's
 * state-on-runner mode, runners/holding.ts stores): one graph computes the loss, the gradients, their global norm,
 * the clip and the update, and returns only the loss and the norm. Its new parameters and moments are fed back
 * into the store under the names the next step reads, so none of them crosses to this process between steps.
 *
 *   inputs   the gradient graph's (parameters by name, batch); `<slot>:<name>` for each moment (AdamW m, v; SGD
 *            buf), shaped as the parameter; coef (float32[N·K], COEFFICIENTS per trainable tensor in order);
 *            maxNorm (float32[1]) when clipping
 *   outputs  loss; norm when clipping; `new:<name>` and `new_<slot>:<name>` (fed back: see `fusedFeedback`)
 *
 * The arithmetic is device-graph.ts's, element by element, so a fused step gives the bits of the gradient graph
 * followed by the update graphs.
 */
import type { Executable } from '../compile.ts';
import type { Graph, Tensor } from '../ir/graph.ts';
import type { HostTensor } from '../ir/host.ts';
import { TensorStore } from '../../runners/holding.ts';
import { lookup, replay } from '../ir/transform.ts';
import * as op from '../ops/api.ts';
import { COEFFICIENTS, adamwUpdate, clipScale, momentSlots, sgdUpdate, type UpdateRule } from './device-graph.ts';
import { f32, type Entry, type UpdateEnv } from './device-update.ts';

export interface FusedSpec {
  readonly rule: UpdateRule;
  /** The trainable tensors in order (the gradient graph has `grad:<name>` for each), and whether each is decayed. */
  readonly params: readonly { readonly name: string; readonly decayed: boolean }[];
  readonly clip: boolean;
}

/** The input name of a moment of a parameter in a fused graph (and in the store). */
export const momentName = (slot: string, param: string) => `${slot}:${param}`;

/** `{ output: input }`: each new parameter and moment feeds the input it replaces on the next step. */
export function fusedFeedback(spec: FusedSpec): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const { name } of spec.params) {
    pairs[`new:${name}`] = name;
    for (const slot of momentSlots(spec.rule)) pairs[`new_${momentName(slot, name)}`] = momentName(slot, name);
  }
  return pairs;
}

export function fusedGraph(gradGraph: Graph, spec: FusedSpec): Graph {
  const { g, env } = replay(gradGraph);
  const output = (name: string): Tensor => {
    const o = gradGraph.outputs.find((x) => x.name === name);
    if (!o) throw new Error(`fusedGraph: the gradient graph has no output '${name}'`);
    return lookup(env, o.v);
  };
  const input = (name: string): Tensor => {
    const i = gradGraph.inputs.find((x) => x.name === name);
    if (!i) throw new Error(`fusedGraph: the gradient graph has no input '${name}'`);
    return lookup(env, i.v);
  };
  const k = COEFFICIENTS[spec.rule.kind].length, slots = momentSlots(spec.rule);
  const coef = g.input('coef', 'float32', [spec.params.length * k]);
  const grads = spec.params.map(({ name }) => output(`grad:${name}`));
  const out: Record<string, Tensor> = { loss: output('loss') };
  let scale: Tensor | undefined;
  if (spec.clip) {
    const flat = grads.map((t) => op.reshape(t, [t.shape.reduce<number>((a, b) => a * (b as number), 1)])); // [n]
    const clipped = clipScale(flat, g.input('maxNorm', 'float32', [1]));
    out.norm = clipped.norm;
    scale = clipped.scale;
  }
  spec.params.forEach(({ name, decayed }, i) => {
    const p = input(name);
    const moments = slots.map((slot) => g.input(momentName(slot, name), 'float32', p.shape));
    const c = (j: number) => op.slice(coef, 0, i * k + j, i * k + j + 1); // [1]
    const grad = scale ? op.mul(grads[i]!, scale) : grads[i]!;
    const next = spec.rule.kind === 'adamw'
      ? adamwUpdate(spec.rule, p, grad, moments[0]!, moments[1]!, decayed ? c(0) : undefined, c(1), c(2))
      : sgdUpdate(spec.rule, p, grad, moments[0], c(0), decayed ? c(1) : undefined, c(2), c(3));
    out[`new:${name}`] = next.p;
    slots.forEach((slot, j) => { out[`new_${momentName(slot, name)}`] = next.moments[j]!; });
  });
  return g.build(out);
}

/**
 * The bookkeeping of fused steps: the store that keeps the parameters and moments where the steps run, the host
 * arrays of those parameters, whether the store holds them (`seeded`) and whether they are newer there than here
 * (`stale`, with a session of the store to read them back through).
 */
export class FusedSteps {
  readonly store = new TensorStore();
  private readonly params = new Map<string, Float32Array>();
  private seeded = false;
  private stale?: { exe: Executable; names: readonly string[] };

  constructor(private readonly env: UpdateEnv, private readonly who: string) {}

  /** Tensors whose state is newer on the runner. */
  staleCount(): number {
    return this.stale?.names.length ?? 0;
  }

  /**
   * The feeds of a step of `entries` (coefficients, maxNorm); the first one, or the first after `reseed`, also
   * seeds the store with the parameters and the moments (zeros for a tensor's first update).
   */
  feeds(entries: readonly Entry[], shapes: ReadonlyMap<string, readonly number[]>, lr: number, maxNorm: number | null): Record<string, HostTensor> {
    const feeds: Record<string, HostTensor> = { coef: f32(this.env.coefficients(entries, lr)) }; // before zero moments exist (SGD's first step)
    if (maxNorm !== null) feeds.maxNorm = f32(Float32Array.of(maxNorm));
    for (const e of entries) this.params.set(e.name, e.param);
    if (this.seeded) return feeds;
    const state = this.env.state();
    for (const e of entries) {
      const shape = [...shapes.get(e.name)!];
      feeds[e.name] = { dtype: 'float32', shape, data: e.param };
      momentSlots(this.env.rule).forEach((slot, j) => {
        const own = state.arrays[j]!;
        if (!own.has(e.name)) own.set(e.name, new Float32Array(e.param.length));
        feeds[momentName(slot, e.name)] = { dtype: 'float32', shape, data: own.get(e.name)! };
      });
    }
    return feeds;
  }

  /** After a step ran on `exe`: the store holds the newer state, and each tensor counted a step. */
  stepped(exe: Executable, names: readonly string[]): void {
    this.seeded = true;
    this.stale = { exe, names: [...names] };
    const { steps } = this.env.state();
    if (this.env.counted) for (const name of names) steps.set(name, (steps.get(name) ?? 0) + 1);
  }

  /** Reads the parameters and moments back into the host arrays; the store keeps its copy for the next step. */
  async sync(): Promise<void> {
    const stale = this.stale;
    if (!stale) return;
    const { arrays } = this.env.state();
    for (const name of stale.names) {
      this.params.get(name)!.set((await stale.exe.readHeld!(name)).data as Float32Array);
      for (const [j, slot] of momentSlots(this.env.rule).entries()) arrays[j]!.get(name)!.set((await stale.exe.readHeld!(momentName(slot, name))).data as Float32Array);
    }
    this.stale = undefined;
  }

  /** The next step feeds the host's parameters and moments again (they were loaded, or the store went). */
  reseed(): void {
    if (this.stale) throw new Error(`${this.who}: the runner holds newer parameters and moments than here; await syncState() first`);
    this.seeded = false;
  }
}
