/**
 * Finite-difference check of a plugin's graph rewrites on a whole (tiny) model: for every trainable tensor, the
 * analytic directional derivative <∇L, v> along a random direction v against the central difference
 * (L(θ + h v) − L(θ − h v)) / 2h.
 *
 * Values a graph marks with stop_gradient (e.g. DoRA's weight norm, "treated as a constant in the backward pass")
 * are held at their values at θ: the difference is taken of that surrogate, whose exact gradient is what backprop
 * computes. Trainable tensors are jittered first, so parts that start at zero (LoRA's B) do not make a check vacuous.
 */
import { compile, gradName, valueAndGrad, type Graph, type HostTensor, type NamedVar, type Plugin } from '../core/index.ts';
import { gaussian, kitFeeds, kitModel, setupKitModel, type KitModelOptions } from './run-model.ts';
import { KitError } from './errors.ts';

export interface GradientCheckOptions extends KitModelOptions {
  /** Fresh plugin objects for the check (a factory, since plugins keep state). */
  plugins: () => Plugin[];
  /** Batch shape (default 2 x 8). */
  dims?: { B: number; T: number };
  /** Random directions per tensor (default 2). */
  directions?: number;
  /** Step of the central difference along a unit direction (default 3e-2: large enough that float32 rounding of the loss stays below atol). */
  h?: number;
  /** Passes when |analytic − numeric| ≤ atol + rtol · max(|analytic|, |numeric|) (defaults 2e-4 and 2e-2). */
  rtol?: number;
  atol?: number;
  /** Standard deviation of the noise added to trainable tensors before checking (default 0.02; 0 = none). */
  jitter?: number;
  seed?: number;
}

export interface GradientCheckRow {
  tensor: string;
  direction: number;
  analytic: number;
  numeric: number;
  error: number;
  ok: boolean;
}

export interface GradientCheckReport {
  rows: GradientCheckRow[];
  ok: boolean;
  /** A readable table of the rows. */
  table: string;
}

/** The graph with each stop_gradient output turned into an input (`frozen:<k>`), and the graph that computes them. */
function freezeStopGradients(g: Graph): { frozenOutputs: Graph; surrogate: Graph; names: string[] } {
  const stops = g.eqns.filter((e) => e.prim.name === 'stop_gradient');
  const named: NamedVar[] = stops.map((e, k) => ({ name: `frozen:${k}`, v: e.out }));
  return {
    frozenOutputs: { ...g, outputs: [...g.outputs, ...named] },
    surrogate: { inputs: [...g.inputs, ...named], eqns: g.eqns.filter((e) => e.prim.name !== 'stop_gradient'), outputs: g.outputs.filter((o) => o.name === 'loss') },
    names: named.map((n) => n.name),
  };
}

const f32 = (t: HostTensor) => t.data as Float32Array;

export async function checkGradients(o: GradientCheckOptions): Promise<GradientCheckReport> {
  const model = await kitModel(o);
  const plugins = o.plugins();
  const { m, trainable } = await setupKitModel(model, plugins);
  const dims = o.dims ?? { B: 2, T: 8 };
  const rand = gaussian(o.seed ?? 11);
  const jitter = o.jitter ?? 0.02;
  // θ: the trainable tensors, jittered (copies: the model's own values stay as they were).
  const theta = new Map<string, Float32Array>();
  for (const name of trainable) {
    const t = f32(m.params.get(name)!).slice();
    if (jitter > 0) for (let i = 0; i < t.length; i++) t[i]! += jitter * rand();
    theta.set(name, t);
    m.params.set(name, { ...m.params.get(name)!, data: t });
  }
  const feeds = await kitFeeds(m, trainable, dims);
  const inputsOf = (g: Graph, extra: Record<string, HostTensor> = {}) => {
    const out: Record<string, HostTensor> = { ...feeds, ...extra };
    for (const i of g.inputs) if (!(i.name in out)) out[i.name] = m.params.get(i.name)!;
    return out;
  };

  const gradExe = await compile(valueAndGrad(m.forward, { of: 'loss', wrt: trainable }), { dims });
  const grads = await gradExe.run(inputsOf(gradExe.graph));
  const { frozenOutputs, surrogate, names } = freezeStopGradients(m.forward);
  const frozenExe = await compile(frozenOutputs, { dims });
  const frozenValues = await frozenExe.run(inputsOf(frozenExe.graph));
  const frozen = Object.fromEntries(names.map((n) => [n, frozenValues[n]!]));
  const lossExe = await compile(surrogate, { dims });
  const lossAt = async (name: string, values: Float32Array) => {
    const base = m.params.get(name)!;
    const out = await lossExe.run(inputsOf(lossExe.graph, { ...frozen, [name]: { ...base, data: values } }));
    return Number(out.loss!.data[0]);
  };

  const h = o.h ?? 3e-2, rtol = o.rtol ?? 2e-2, atol = o.atol ?? 2e-4;
  const rows: GradientCheckRow[] = [];
  try {
    for (const name of trainable) {
      const t = theta.get(name)!;
      const g = f32(grads[gradName(name)]!);
      for (let d = 0; d < (o.directions ?? 2); d++) {
        const v = new Float32Array(t.length).map(() => rand());
        const norm = Math.hypot(...v);
        let analytic = 0;
        for (let i = 0; i < v.length; i++) analytic += g[i]! * (v[i]! /= norm);
        const plus = t.map((x, i) => x + h * v[i]!), minus = t.map((x, i) => x - h * v[i]!);
        const numeric = ((await lossAt(name, plus)) - (await lossAt(name, minus))) / (2 * h);
        const error = Math.abs(analytic - numeric);
        rows.push({ tensor: name, direction: d, analytic, numeric, error, ok: error <= atol + rtol * Math.max(Math.abs(analytic), Math.abs(numeric)) });
      }
    }
  } finally {
    for (const e of [gradExe, frozenExe, lossExe]) await e.release();
  }
  const width = Math.max(6, ...rows.map((r) => r.tensor.length));
  const table = [
    `${'tensor'.padEnd(width)}  dir  analytic      numeric       |error|   ok`,
    ...rows.map((r) => `${r.tensor.padEnd(width)}  ${String(r.direction).padStart(3)}  ${r.analytic.toExponential(4).padStart(12)}  ${r.numeric.toExponential(4).padStart(12)}  ${r.error.toExponential(1).padStart(8)}  ${r.ok ? 'yes' : 'NO'}`),
  ].join('\n');
  return { rows, ok: rows.every((r) => r.ok), table };
}

/** checkGradients, throwing a KitError with the table when any row fails. */
export async function expectGradients(o: GradientCheckOptions): Promise<GradientCheckReport> {
  const r = await checkGradients(o);
  if (!r.ok) throw new KitError(`gradient check failed (${r.rows.filter((x) => !x.ok).length} of ${r.rows.length} directions):\n${r.table}`);
  if (r.rows.length === 0) throw new KitError('gradient check: the plugins train nothing');
  return r;
}


