/**
 * The runner conformance suite's machinery: which runners exist, how a case is run on one, how results are compared.
 * `tests/runners/conformance.test.ts` runs every case on every available runner and compares each with the
 * reference (onnxruntime-node on the CPU). A new runner is one entry in `CONFORMANCE_RUNNERS`:
 *
 * ```ts
 * { name: 'sidecar (cpu)', available: async () => true, make: () => sidecarRunner(url) },
 * ```
 */
import { compile, type CompileOptions } from '../core/compile.ts';
import { trace, type Graph } from '../core/ir/graph.ts';
import { hostTensor, type HostTensor } from '../core/ir/host.ts';
import * as op from '../core/ops/api.ts';
import { ortNodeRunner } from './ort-node.ts';
import { ortFfiUnavailable } from './ort-ffi.ts';
import { ortWebRunner } from './ort-web.ts';
import { loopbackSidecar } from './sidecar-server.ts';
import { withInputViews } from '../core/onnx/input-views.ts';
import { holds } from './holding.ts';
import type { CompiledStep, Runner } from './types.ts';

export interface MakeOptions {
  /** `{ output: input }` pairs of a multi-round case; a runner may hold them on its device (`readHeld`). */
  feedback?: Readonly<Record<string, string>>;
}

export interface ConformanceRunner {
  readonly name: string;
  /** `true`, or the reason the runner cannot run on this machine (the suite skips it and prints the reason). */
  available(): Promise<string | true>;
  make(options: MakeOptions): Runner | Promise<Runner>;
  /** Why a case is left out on this runner (too slow there), or undefined. */
  skip?(c: ConformanceCase): string | undefined;
  /**
   * A known defect of the runner on a case: the suite then expects the case to disagree with the reference, and
   * fails once it agrees (the defect is gone: remove the entry).
   */
  known?(c: ConformanceCase): string | undefined;
  /** Frees what `make` started (a browser, a connection). */
  close?(): Promise<void>;
}

/** A step to run on every runner: its feeds per round, and the outputs that become the next round's inputs. */
export interface ConformanceCase {
  readonly name: string;
  readonly step: CompiledStep;
  /** Round 0 feeds every input; later rounds feed only what is not fed back. */
  readonly rounds: readonly Readonly<Record<string, HostTensor>>[];
  readonly feedback?: Readonly<Record<string, string>>;
  /** Largest accepted relative error (max |a - b| / max |b| per tensor). */
  readonly tol: number;
  /** A model-sized case (seconds a round on a software GPU). */
  readonly heavy?: boolean;
}

/** What a case produced: each round's returned outputs, and the fed-back values after the last round. */
export interface CaseResult {
  rounds: Record<string, HostTensor>[];
  final: Record<string, HostTensor>;
}

/**
 * Runs a case. A session that holds fed-back outputs itself (`readHeld`) gets only the new inputs each round; any
 * other gets the previous round's outputs fed back from the host, so both paths compute the same thing.
 */
export async function runCase(runner: Runner, c: ConformanceCase): Promise<CaseResult> {
  const session = await runner.load(c.step);
  const pairs = Object.entries(c.feedback ?? {});
  const result: CaseResult = { rounds: [], final: {} };
  try {
    let carried: Record<string, HostTensor> = {};
    for (const feeds of c.rounds) {
      const out = await session.run(withInputViews(c.step.inputs, { ...carried, ...feeds }));
      if (!holds(session)) carried = Object.fromEntries(pairs.map(([o, i]) => [i, out[o]!]));
      result.rounds.push(Object.fromEntries(Object.entries(out).filter(([name]) => !(c.feedback && name in c.feedback))));
    }
    for (const [, input] of pairs) result.final[input] = holds(session) ? await session.readHeld(input) : carried[input]!;
  } finally {
    await session.release();
  }
  return result;
}

/** max |a - b| / max |b| over one tensor (0 when both are all zeros). */
export function maxRelError(a: HostTensor, b: HostTensor): number {
  if (a.data.length !== b.data.length) return Infinity;
  let diff = 0, scale = 0;
  for (let i = 0; i < b.data.length; i++) {
    const x = Number(a.data[i]), y = Number(b.data[i]);
    diff = Math.max(diff, Math.abs(x - y));
    scale = Math.max(scale, Math.abs(y));
  }
  return diff === 0 ? 0 : diff / scale;
}

/** The worst tensor of a result against the reference's: its name and error; missing tensors are errors. */
export function compareResults(got: CaseResult, ref: CaseResult): { worst: number; where: string; problems: string[] } {
  const problems: string[] = [];
  let worst = 0, where = '';
  const visit = (label: string, g: Record<string, HostTensor> | undefined, r: Record<string, HostTensor>) => {
    for (const [name, t] of Object.entries(r)) {
      const mine = g?.[name];
      if (!mine) { problems.push(`${label}${name} is missing`); continue; }
      if (mine.shape.join() !== t.shape.join()) { problems.push(`${label}${name} has shape [${mine.shape}], expected [${t.shape}]`); continue; }
      const e = maxRelError(mine, t);
      if (Number.isNaN(e)) problems.push(`${label}${name} holds NaN`);
      else if (e > worst) { worst = e; where = `${label}${name}`; }
    }
  };
  ref.rounds.forEach((r, i) => visit(`round ${i} `, got.rounds[i], r));
  visit('final ', got.final, ref.final);
  return { worst, where, problems };
}

/**
 * The ONNX step `compile()` produces for a graph, without loading it anywhere: compile is given a runner that only
 * records what it is handed, so every runner is fed the very bytes the trainer would run.
 */
export async function captureStep(graph: Graph, options: Omit<CompileOptions, 'runner'> = {}): Promise<CompiledStep> {
  let captured: CompiledStep | undefined;
  const recorder: Runner = {
    name: 'capture',
    async load(step) {
      captured = step;
      const refuse = async (): Promise<never> => { throw new Error('captureStep: this session only records the step'); };
      return { run: refuse, release: async () => {} };
    },
  };
  await (await compile(graph, { ...options, runner: recorder })).release();
  if (!captured) throw new Error('captureStep: compile() loaded nothing');
  return captured;
}

/** A tiny graph (y = exp(x) · 2) loaded to see whether a runner starts here; resolves to true or the reason. */
async function probe(runner: Runner, step: CompiledStep, feeds: Record<string, HostTensor>): Promise<string | true> {
  try {
    const s = await runner.load(step);
    await s.run(withInputViews(step.inputs, feeds));
    await s.release();
    return true;
  } catch (e) {
    return (e instanceof Error ? e.message : String(e)).split('\n').slice(0, 3).join(' ');
  }
}

let probeStep: Promise<{ step: CompiledStep; feeds: Record<string, HostTensor> }> | undefined;
/** The probe's step, built once. */
export function probeCase(): Promise<{ step: CompiledStep; feeds: Record<string, HostTensor> }> {
  const graph = () => trace((g) => ({ y: op.mul(op.exp(g.input('x', 'float32', [2, 3])), 2) }));
  return (probeStep ??= captureStep(graph()).then((step) => ({ step, feeds: { x: hostTensor('float32', [2, 3], [0, 1, 2, 3, 4, 5]) } })));
}

/** Runners of this process. The first is the reference every other is compared with. */
export const CONFORMANCE_RUNNERS: ConformanceRunner[] = [
  { name: 'onnxruntime-node cpu', available: async () => true, make: () => ortNodeRunner({ binding: 'node' }) },
  {
    name: 'onnxruntime C API cpu (bun:ffi)',
    available: async () => (await ortFfiUnavailable()) ?? true,
    make: () => ortNodeRunner({ binding: 'c-api' }),
  },
  {
    name: 'onnxruntime-node webgpu',
    available: async () => { const p = await probeCase(); return probe(ortNodeRunner({ provider: 'webgpu' }), p.step, p.feeds); },
    make: () => ortNodeRunner({ provider: 'webgpu' }),
  },
  {
    name: 'onnxruntime-web wasm (this process)',
    available: async () => { const p = await probeCase(); return probe(ortWebRunner(), p.step, p.feeds); },
    make: ({ feedback }) => ortWebRunner({ feedback }),
  },
  { name: 'sidecar (cpu, loopback)', ...loopbackSidecar('cpu') },
  // The sidecar as it runs on a GPU machine (its WebGPU provider), here on whatever adapter Dawn finds (lavapipe in CI).
  { name: 'sidecar (webgpu, loopback)', ...loopbackSidecar('webgpu') },
];
