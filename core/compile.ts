/**
 * Importable in a browser (given a `runner`): what needs Node (onnxruntime-node, the default runner; the file system,
 * for external data) is imported only when it is used.
 */
import type { Graph } from './ir/graph.ts';
import type { HostTensor } from './ir/host.ts';
import { assertGraph } from './ir/check.ts';
import { formatShape } from './ir/shape.ts';
import { specialize } from './ir/specialize.ts';
import { eliminateDeadCode } from './ir/transform.ts';
import { lowerGraph } from './onnx/lower.ts';
import { encodeModel, type OnnxValueInfo } from './onnx/model.ts';
import { fedInputs, withInputViews } from './onnx/input-views.ts';
import type { CompiledStep, Runner, RunnerSession, RunOptions } from '../runners/types.ts';
import { holdOutputs, holds, type TensorStore } from '../runners/holding.ts';
import { graphCost, type GraphCost } from './cost.ts';
import { collectGarbage, settleFreedMemory, trimMalloc } from './memory/allocator.ts';

export interface CompileOptions {
  /** Values of symbolic dims, e.g. `{ B: 16, T: 64 }`. */
  dims?: Readonly<Record<string, number>>;
  /** Inputs baked into the compiled session (frozen weights): not fed at run time, kept resident. */
  resident?: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>;
  runner?: Runner;
  /** Above this many bytes of initializers, weights go to an external data file (protobuf's 2 GB limit). */
  externalDataThreshold?: number;
  /**
   * Wait for freed JavaScript heap pages to go back to the system before building the session (memory/allocator.ts
   * `settleFreedMemory`, ~200 ms): for a session that replaces released ones, so its peak is not raised by their garbage.
   */
  settle?: boolean;
  /**
   * `{ output: input }` pairs held between runs (runners/holding.ts): not returned by `run`, fed to their inputs
   * when a run leaves them out, read back with `readHeld`. On a runner with `holdsOutputs` they stay where the session
   * runs (the sidecar, a GPU); elsewhere in this process.
   */
  feedback?: Readonly<Record<string, string>>;
  /**
   * Hold in this store (runners/holding.ts `TensorStore`), shared with every session compiled with it: any input a
   * run leaves out is served from the store when it holds that name, and `feedback` may name an input of another of
   * its sessions. On a runner with `sharesStores` the tensors stay there; on one in this process, in `store`.
   */
  store?: TensorStore;
  /** Fed-back outputs that may be written over the held tensor they replace (runners/types.ts `LoadOptions.inPlace`). */
  inPlace?: readonly string[];
  /**
   * The embedding gradient (a row scatter-add) as one-hot matrix products, which sum in a fixed order (default true),
   * or, with false, as ScatterND with reduction 'add'. onnxruntime 1.30's ScatterND is wrong where rows share an
   * index and the scatter is large enough for its CPU kernel to split it over threads: they race and lose updates
   * (measured: 1,024 token ids into SmolLM2-135M's 49,152 x 576 table, 2 threads, up to 96 elements off by a whole
   * update in one of six runs); its WebGPU and CUDA kernels add in a different order each run. The products cost
   * N·V·D multiply-adds for N rows into a V x D table (about the LM head's forward product again; measured: no
   * change in SmolLM2-135M's full fine-tuning step time on the CPU) and one more V x D buffer at the peak.
   */
  orderedScatter?: boolean;
}

/** A compiled graph ready to run: feed the non-resident inputs by name, get every output by name. */
export interface Executable {
  readonly graph: Graph;
  /** What the caller feeds (the step's input views are added by `run`). */
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
  readonly cost: GraphCost;
  /** `into`: outputs written into these tensors (runners/types.ts `RunOptions`); they are returned as given. */
  run(feeds: Readonly<Record<string, HostTensor>>, options?: RunOptions): Promise<Record<string, HostTensor>>;
  /** With `feedback`: the tensor held for a fed-back input. */
  readHeld?(input: string): Promise<HostTensor>;
  release(): Promise<void>;
}

const DEFAULT_EXTERNAL_THRESHOLD = 1.5 * 2 ** 30;

/**
 * Specialises, checks, lowers and loads a graph.
 *
 * ```ts
 * const exe = await compile(valueAndGrad(g, { of: 'loss', wrt: ['w'] }), { dims: { B: 32 }, resident: { x } });
 * const { loss, 'grad:w': dw } = await exe.run({ w });
 * ```
 */
export async function compile(graph: Graph, opts: CompileOptions = {}): Promise<Executable> {
  assertGraph(graph); // on the symbolic graph: shape rules see the dims as written
  const concrete = eliminateDeadCode(specialize(graph, opts.dims ?? {}));
  const resident = opts.resident instanceof Map ? opts.resident : new Map(Object.entries(opts.resident ?? {}));
  const { model, origins } = lowerGraph(concrete, { resident, orderedScatter: opts.orderedScatter ?? true });
  const initBytes = model.initializers.reduce((s, i) => s + (i.raw?.length ?? 0), 0);
  const threshold = opts.externalDataThreshold ?? DEFAULT_EXTERNAL_THRESHOLD;
  const step: CompiledStep = {
    model: initBytes > threshold ? (await import('./onnx/external-data.ts')).withExternalData(model) : { bytes: encodeModel(model) },
    inputs: model.inputs,
    outputs: model.outputs,
    origins,
  };
  // Lowering and encoding leave JavaScript garbage of the order of the graph (tens of MB for a SmolLM2-135M step),
  // and onnxruntime's session build allocates a transient of its own (graph optimisation) on top: collected first,
  // the two do not stack, and trimmed after, the build's freed native memory is not left in glibc's heaps under the
  // next session (bench:memory's smollm2-135m qlora plain 1x16, whose peak is the first compile: 442 -> 420-433 MiB).
  if (opts.settle) await settleFreedMemory();
  else collectGarbage();
  const runner = opts.runner ?? (await import('../runners/ort-node.ts')).ortNodeRunner();
  const feedback = opts.feedback && Object.keys(opts.feedback).length ? opts.feedback : undefined;
  const store = opts.store;
  if (store && runner.holdsOutputs && !runner.sharesStores) {
    throw new Error(`compile: ${runner.name} holds outputs per session and cannot share a store between sessions; compile without store`);
  }
  const remote = runner.holdsOutputs === true;
  const inPlace = opts.inPlace?.length ? opts.inPlace : undefined;
  let session: RunnerSession = await runner.load(step, { ...(feedback ? { feedback } : {}), ...(store && remote ? { store: store.id } : {}), ...(inPlace && remote ? { inPlace } : {}) });
  if ((feedback || store) && !remote) session = holdOutputs(session, step, feedback ?? {}, runner.name, undefined, store, inPlace);
  await trimMalloc();
  const inputs = fedInputs(model.inputs);
  // With a store, any input may be served by it: the session names those it has not got.
  const heldInputs = store ? new Set(inputs.map((i) => i.name)) : new Set(Object.values(feedback ?? {}));
  return {
    graph: concrete,
    inputs,
    outputs: model.outputs,
    cost: graphCost(concrete),
    run: async (feeds, options = {}) => {
      checkFeeds(inputs, feeds, heldInputs);
      if (options.into) checkInto(model.outputs, options.into);
      return writtenInto(await session.run(withInputViews(step.inputs, feeds), options), options.into);
    },
    ...(holds(session) && (feedback || store) ? { readHeld: session.readHeld.bind(session) } : {}),
    release: () => session.release(),
  };
}

/** Each `into` tensor names an output and has its dtype and shape. */
function checkInto(outputs: readonly OnnxValueInfo[], into: Readonly<Record<string, HostTensor>>): void {
  const problems: string[] = [];
  for (const [name, t] of Object.entries(into)) {
    const o = outputs.find((x) => x.name === name);
    if (!o) problems.push(`'${name}' is not an output (outputs: ${outputs.map((x) => x.name).join(', ')})`);
    else if (t.dtype !== o.dtype || t.data.length !== o.dims.reduce((a, b) => a * b, 1)) {
      problems.push(`'${name}' is ${o.dtype}${formatShape(o.dims)}, cannot be written into ${t.dtype}${formatShape(t.shape)}`);
    }
  }
  if (problems.length) throw new Error(`bad outputs to write into:\n  ${problems.join('\n  ')}`);
}

/** The run's outputs with each `into` output in its tensor: copied there where the runner returned its own. */
function writtenInto(out: Record<string, HostTensor>, into: Readonly<Record<string, HostTensor>> | undefined): Record<string, HostTensor> {
  for (const [name, target] of Object.entries(into ?? {})) {
    const got = out[name];
    if (!got || got === target) continue;
    if (got.data !== target.data) (target.data as Float32Array).set(got.data as Float32Array);
    out[name] = target;
  }
  return out;
}

/** Every expected input present with the right dtype and shape; nothing unexpected. All problems at once. */
function checkFeeds(expected: readonly OnnxValueInfo[], feeds: Readonly<Record<string, HostTensor>>, held: ReadonlySet<string>): void {
  const problems: string[] = [];
  for (const e of expected) {
    const f = feeds[e.name];
    if (!f && held.has(e.name)) continue; // the session serves it (or says it holds nothing yet)
    if (!f) problems.push(`missing input '${e.name}' (${e.dtype}${formatShape(e.dims)})`);
    else if (f.dtype !== e.dtype || f.shape.length !== e.dims.length || f.shape.some((d, i) => d !== e.dims[i])) {
      problems.push(`input '${e.name}' is ${f.dtype}${formatShape(f.shape)}, expected ${e.dtype}${formatShape(e.dims)}`);
    }
  }
  for (const name of Object.keys(feeds)) {
    if (!expected.some((e) => e.name === name)) {
      const names = expected.map((e) => e.name);
      const shown = names.length > 8 ? `${names.slice(0, 8).join(', ')}, ... (${names.length} in all)` : names.join(', ');
      problems.push(`unexpected input '${name}' (expected: ${shown})`);
    }
  }
  if (problems.length) throw new Error(`bad feeds:\n  ${problems.join('\n  ')}`);
}
