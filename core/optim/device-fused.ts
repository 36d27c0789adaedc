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
 * With micro-batches, a step is two graphs (`FusedRole`), as core/optim/accumulate.ts weights them: each
 * micro-batch runs the `accumulate` graph, acc' = n·g for a step's first (input keep [1] = 0), acc + n·g after (keep 1;
 * n: its loss tokens, input `tokens` [1]), kept in the store as `acc:<name>`; then the `update` graph, which holds
 * no model, scales acc by 1/N (input `invTokens` [1]), clips and updates. So however many micro-batches there are,
 * one session per batch shape holds the model's frozen weights (a LoRA run's base model on a GPU), not three.
 *
 * The arithmetic is device-graph.ts's, element by element, so a fused step gives the bits of the gradient graph
 * followed by the update graphs.
 */
import type { Executable } from '../compile.ts';
import { GraphBuilder, type Graph, type Tensor } from '../ir/graph.ts';
import type { HostTensor } from '../ir/host.ts';
import { TensorStore } from '../../runners/holding.ts';
import { lookup, replay } from '../ir/transform.ts';
import * as op from '../ops/api.ts';
import { COEFFICIENTS, adamwUpdate, clipScale, momentSlots, sgdUpdate, type UpdateRule } from './device-graph.ts';
import { f32, type Entry, type UpdateEnv } from './device-update.ts';

/** A step's only graph, or, with micro-batches, the graph each runs and the update after them (see the file comment). */
export type FusedRole = 'only' | 'accumulate' | 'update';

/** Whether a role's graph updates the parameters. */
export const updates = (role: FusedRole) => role !== 'accumulate';

export interface FusedSpec {
  readonly rule: UpdateRule;
  /** The trainable tensors in order (the gradient graph has `grad:<name>` for each), and whether each is decayed. */
  readonly params: readonly { readonly name: string; readonly decayed: boolean }[];
  readonly clip: boolean;
  readonly role: FusedRole;
}

/** The input name of a moment of a parameter in a fused graph (and in the store). */
export const momentName = (slot: string, param: string) => `${slot}:${param}`;
/** The input name of a parameter's gradient accumulated over a step's micro-batches. */
export const accName = (param: string) => `acc:${param}`;

/** `{ output: input }`: each new parameter, moment or accumulated gradient feeds the input it replaces next. */
export function fusedFeedback(spec: FusedSpec): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const { name } of spec.params) {
    if (spec.role === 'accumulate') {
      pairs[`new_${accName(name)}`] = accName(name);
      continue;
    }
    pairs[`new:${name}`] = name;
    for (const slot of momentSlots(spec.rule)) pairs[`new_${momentName(slot, name)}`] = momentName(slot, name);
  }
  return pairs;
}

/**
 * The fed-back outputs that may be written over the held tensor they replace (LoadOptions.inPlace): a moment and an
 * accumulated gradient are read only by the element-wise chain that makes their successor; a parameter also by the
 * forward and backward passes, which all come before the global norm, hence before any update, only with clipping
 * (the update graph of micro-batches has no forward pass: there always).
 */
export function fusedInPlace(spec: FusedSpec): string[] {
  return Object.keys(fusedFeedback(spec)).filter((output) => spec.role === 'update' || spec.clip || !output.startsWith('new:'));
}

export function fusedGraph(gradGraph: Graph, spec: FusedSpec): Graph {
  if (spec.role === 'update') return updateOfAccumulated(gradGraph, spec);
  const { g, env } = replay(gradGraph);
  const output = (name: string): Tensor => {
    const o = gradGraph.outputs.find((x) => x.name === name);
    if (!o) throw new Error(`fusedGraph: the gradient graph has no output '${name}'`);
    return lookup(env, o.v);
  };
  const input = (name: string): Tensor => lookup(env, gradInput(gradGraph, name).v);
  const out: Record<string, Tensor> = { loss: output('loss') };
  const own = spec.params.map(({ name }) => output(`grad:${name}`));
  if (spec.role === 'only') return withUpdate(g, spec, own, input, out);
  // n·g of this micro-batch, added to what the step's earlier ones stored (acc, shaped as the parameter) unless it is
  // the step's first (keep 0). Selected, not multiplied by keep: a previous step's non-finite sum must not leak in.
  const tokens = g.input('tokens', 'float32', [1]), adds = op.less(0, g.input('keep', 'float32', [1])); // [1] bool
  spec.params.forEach(({ name }, i) => {
    const acc = g.input(accName(name), 'float32', own[i]!.shape), weighted = op.mul(own[i]!, tokens);
    out[`new_${accName(name)}`] = op.where(adds, op.add(acc, weighted), weighted);
  });
  return g.build(out);
}

function gradInput(gradGraph: Graph, name: string) {
  const i = gradGraph.inputs.find((x) => x.name === name);
  if (!i) throw new Error(`fusedGraph: the gradient graph has no input '${name}'`);
  return i;
}

/** The update from a step's accumulated gradients (acc / N), clipped when asked: no model, only the trainable tensors. */
function updateOfAccumulated(gradGraph: Graph, spec: FusedSpec): Graph {
  const g = new GraphBuilder();
  const params = new Map(spec.params.map(({ name }) => [name, g.input(name, 'float32', gradInput(gradGraph, name).v.shape)]));
  const inv = g.input('invTokens', 'float32', [1]);
  const grads = spec.params.map(({ name }) => op.mul(g.input(accName(name), 'float32', params.get(name)!.shape), inv));
  return withUpdate(g, spec, grads, (name) => params.get(name)!, {});
}

/** The clip (when asked) and the update of every parameter from its gradient `grads[i]`, added to `out`. */
function withUpdate(g: GraphBuilder, spec: FusedSpec, grads: readonly Tensor[], input: (name: string) => Tensor, out: Record<string, Tensor>): Graph {
  const k = COEFFICIENTS[spec.rule.kind].length, slots = momentSlots(spec.rule);
  const coef = g.input('coef', 'float32', [spec.params.length * k]);
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

/** A trainable tensor of a fused step: its gradient never leaves the graph. */
export type FusedEntry = Omit<Entry, 'grad'>;

/** What a fused graph is fed besides the batch, for one micro-batch. */
export interface FusedStepFeeds {
  lr: number;
  maxNorm: number | null;
  /** With micro-batches: this one's loss tokens (n) and whether it adds to the step's earlier ones (keep 1, else 0). */
  tokens?: number;
  keep?: number;
  /** With micro-batches, for the update: 1 / the step's loss tokens (1/N). */
  invTokens?: number;
}

/**
 * The bookkeeping of fused steps: the store that keeps the parameters and moments where the steps run, the host
 * arrays of those parameters, which names the store holds (`present`, written by an update: the others are fed from here), and whether
 * the state is newer there than here (`stale`, with a session of the store to read it back through).
 */
export class FusedSteps {
  readonly store = new TensorStore();
  private readonly params = new Map<string, Float32Array>();
  private readonly present = new Set<string>();
  private stale?: { exe: Executable; names: readonly string[] };

  constructor(private readonly env: UpdateEnv, private readonly who: string) {}

  /** Tensors whose state is newer on the runner. */
  staleCount(): number {
    return this.stale?.names.length ?? 0;
  }

  /**
   * The feeds of a graph with these `inputs` for `entries`: its scalars, and each parameter or moment it reads that
   * the store does not hold yet (a first step, or the first after `reseed`; moments start as zeros). Accumulated
   * gradients are fed as zeros once, for the accumulate graph to have an input; later steps' first micro-batch (keep 0)
   * ignores what the store holds.
   */
  feeds(inputs: readonly string[], entries: readonly FusedEntry[], shapes: ReadonlyMap<string, readonly number[]>, f: FusedStepFeeds): Record<string, HostTensor> {
    const want = new Set(inputs);
    const feeds: Record<string, HostTensor> = {};
    if (want.has('coef')) feeds.coef = f32(this.env.coefficients(entries, f.lr)); // before zero moments exist (SGD's first step)
    if (want.has('maxNorm')) feeds.maxNorm = f32(Float32Array.of(f.maxNorm ?? 0));
    if (want.has('tokens')) feeds.tokens = f32(Float32Array.of(f.tokens ?? 0));
    if (want.has('invTokens')) feeds.invTokens = f32(Float32Array.of(f.invTokens ?? 0));
    if (want.has('keep')) feeds.keep = f32(Float32Array.of(f.keep ?? 0));
    const state = this.env.state();
    for (const e of entries) {
      this.params.set(e.name, e.param);
      const shape = [...shapes.get(e.name)!];
      // Fed until an update has put its successor in the store (a fed input is not stored itself).
      const seed = (key: string, data: () => Float32Array) => {
        if (want.has(key) && !this.present.has(key)) feeds[key] = { dtype: 'float32', shape, data: data() };
      };
      seed(e.name, () => e.param);
      seed(accName(e.name), () => new Float32Array(e.param.length)); // once: keep 0 ignores what the store holds after
      momentSlots(this.env.rule).forEach((slot, j) => seed(momentName(slot, e.name), () => {
        const own = state.arrays[j]!;
        if (!own.has(e.name)) own.set(e.name, new Float32Array(e.param.length));
        return own.get(e.name)!;
      }));
    }
    return feeds;
  }

  /**
   * After a graph of `role` ran on `exe`: the store holds what it wrote (accumulated gradients; when it updated, the
   * newer state, and each tensor counted a step).
   */
  stepped(exe: Executable, names: readonly string[], role: FusedRole): void {
    if (!updates(role)) {
      for (const name of names) this.present.add(accName(name));
      return;
    }
    this.stale = { exe, names: [...names] };
    for (const name of names) {
      this.present.add(name);
      for (const slot of momentSlots(this.env.rule)) this.present.add(momentName(slot, name));
    }
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

  /** The next graphs feed the host's parameters and moments again (they were loaded, or the store went). */
  reseed(): void {
    if (this.stale) throw new Error(`${this.who}: the runner holds newer parameters and moments than here; await syncState() first`);
    this.present.clear();
  }
}
