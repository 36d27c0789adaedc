/**
 * Checks a function's derivative rules against central finite differences, in both modes:
 * - reverse: <grad_x sum(u * f(x)), v>  vs  (sum(u * f(x + h v)) - sum(u * f(x - h v))) / 2h
 * - forward: <u, jvp_f(x; v)>          vs  the same finite difference
 * for a random cotangent u and a random direction v, one differentiable input at a time.
 */
import { jvp, tangentName } from '../core/autodiff/jvp.ts';
import { gradName, valueAndGrad } from '../core/autodiff/vjp.ts';
import { compile } from '../core/compile.ts';
import type { DType } from '../core/ir/dtype.ts';
import { trace, type Tensor } from '../core/ir/graph.ts';
import { hostTensor, type HostTensor } from '../core/ir/host.ts';
import * as op from '../core/ops/api.ts';
import { mulberry32 } from '../core/data/rng.ts';
import { describe, expect, test } from 'bun:test';

export interface InputSpec {
  shape: number[];
  /** 'float' ~ N(0,1); 'positive' in [0.5, 2]; 'int' uniform in [0, range); 'bool' coin flips. */
  kind?: 'float' | 'positive' | 'int' | 'bool';
  range?: number;
  /** Fixed integer values for 'int' inputs (overrides random). */
  values?: number[];
}

export interface GradCase {
  name: string;
  inputs: InputSpec[];
  fn: (...xs: Tensor[]) => Tensor;
  dtype?: DType;
  /** Finite-difference step (default 1e-6 in float64, 1e-2 in float32). */
  h?: number;
  /** Relative tolerance (default 1e-6 in float64, 2e-3 in float32). */
  tol?: number;
}

export interface GradResult {
  input: number;
  fd: number;
  reverse: number;
  forward: number;
}

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
export const rng = mulberry32;

export function normal(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

const isDiff = (s: InputSpec) => (s.kind ?? 'float') === 'float' || s.kind === 'positive';

/** Default relative tolerance for a case. */
export function tolerance(c: GradCase): number {
  return c.tol ?? ((c.dtype ?? 'float64') === 'float64' ? 1e-6 : 2e-3);
}

export async function gradCheck(c: GradCase, seed = 1): Promise<GradResult[]> {
  const dtype = c.dtype ?? 'float64';
  const rand = rng(seed);
  const names = c.inputs.map((_, i) => `x${i}`);
  const inputDType = (s: InputSpec): DType => (s.kind === 'int' ? 'int64' : s.kind === 'bool' ? 'bool' : dtype);

  const f = trace((g) => ({ y: c.fn(...c.inputs.map((s, i) => g.input(names[i]!, inputDType(s), s.shape))) }));
  const yType = f.outputs[0]!.v;
  const loss = trace((g) => {
    const xs = c.inputs.map((s, i) => g.input(names[i]!, inputDType(s), s.shape));
    const u = g.input('u', yType.dtype, yType.shape);
    return { loss: op.sum(op.mul(u, c.fn(...xs))) };
  });

  const values: HostTensor[] = c.inputs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const kind = s.kind ?? 'float';
    if (kind === 'int') return hostTensor('int64', s.shape, s.values ?? Array.from({ length: n }, () => Math.floor(rand() * (s.range ?? 2))));
    if (kind === 'bool') return hostTensor('bool', s.shape, Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0)));
    return hostTensor(dtype, s.shape, Array.from({ length: n }, () => (kind === 'positive' ? 0.5 + 1.5 * rand() : normal(rand))));
  });
  const yCount = (yType.shape as number[]).reduce((a, b) => a * b, 1);
  const u = hostTensor(dtype, yType.shape as number[], Array.from({ length: yCount }, () => normal(rand)));
  const feeds = (vals: HostTensor[]) => Object.fromEntries(names.map((n, i) => [n, vals[i]!]));

  const diffNames = names.filter((_, i) => isDiff(c.inputs[i]!));
  const fExe = await compile(f);
  const gradExe = await compile(valueAndGrad(loss, { of: 'loss', wrt: diffNames }));
  const jvpExe = await compile(jvp(f, { wrt: diffNames }));
  const grads = await gradExe.run({ ...feeds(values), u });

  const results: GradResult[] = [];
  const h = c.h ?? (dtype === 'float64' ? 1e-6 : 1e-2);
  for (let i = 0; i < names.length; i++) {
    if (!isDiff(c.inputs[i]!)) continue;
    const x = values[i]!;
    const v = Array.from({ length: x.data.length }, () => normal(rand));
    const shifted = (sign: number) => {
      const vals = [...values];
      vals[i] = hostTensor(dtype, x.shape, Array.from(x.data as Float64Array, (xv, k) => xv + sign * h * v[k]!));
      return vals;
    };
    const yPlus = (await fExe.run(feeds(shifted(1)))).y!;
    const yMinus = (await fExe.run(feeds(shifted(-1)))).y!;
    const fd = (dot(u.data as Float64Array, yPlus.data as Float64Array) - dot(u.data as Float64Array, yMinus.data as Float64Array)) / (2 * h);
    const reverse = dot(grads[gradName(names[i]!)]!.data as Float64Array, v);
    const tangentFeeds: Record<string, HostTensor> = {};
    for (const n of diffNames) {
      const xv = values[names.indexOf(n)]!;
      tangentFeeds[tangentName(n)] = hostTensor(dtype, xv.shape, n === names[i] ? v : new Array<number>(xv.data.length).fill(0));
    }
    const ty = (await jvpExe.run({ ...feeds(values), ...tangentFeeds }))[tangentName('y')]!;
    const forward = dot(u.data as Float64Array, ty.data as Float64Array);
    results.push({ input: i, fd, reverse, forward });
  }
  await Promise.all([fExe.release(), gradExe.release(), jvpExe.release()]);
  return results;
}

/** Relative agreement |a - b| / max(1, |b|) <= tol, with both numbers in the message. */
export function expectClose(a: number, b: number, tol: number): void {
  const err = Math.abs(a - b) / Math.max(1, Math.abs(b));
  if (!(err <= tol)) throw new Error(`expected ${a} to be within ${tol} (relative) of ${b}; error ${err.toExponential(2)}`);
}


/** Registers one test per case: reverse and forward mode each agree with central finite differences. */
export function gradTable(title: string, cases: readonly GradCase[]): void {
  describe(title, () => {
    for (const c of cases) {
      test(c.name, async () => {
        const tol = tolerance(c);
        const results = await gradCheck(c);
        expect(results.length).toBeGreaterThan(0);
        for (const r of results) {
          expectClose(r.reverse, r.fd, tol);
          expectClose(r.forward, r.fd, tol);
        }
      });
    }
  });
}
