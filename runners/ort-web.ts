/**
 * A runner on onnxruntime-web: WebAssembly (SIMD, threads where the platform allows) under Bun, Deno and browsers,
 * and WebGPU in browsers that have it.
 *
 * ```ts
 * import * as ort from 'onnxruntime-web';
 * const runner = ortWebRunner({ ort, backend: 'webgpu', feedback: { 'new:w': 'w' } });
 * const session = await runner.load(step);
 * await session.run({ x, w });   // 'new:w' stays on the GPU and is the next run's 'w'
 * await session.run({ x });      // 'w' omitted: the held tensor is fed
 * const w = await session.readHeld('w');
 * ```
 *
 * Importable in a browser: no `node:` import; the onnxruntime-web module is passed in (`ort`) or imported lazily.
 */
import { loadFeedback } from './holding.ts';
import type * as OrtWeb from 'onnxruntime-web';
import type { DType } from '../core/ir/dtype.ts';
import type { HostTensor } from '../core/ir/host.ts';
import { explainRuntimeError, type CompiledStep, type LoadOptions, type Runner, type RunnerSession } from './types.ts';
import { captureLog, describeCpuNodes, formatPlacedNode, installLogTap, logCapturable, parsePlacements, type PlacedNode } from './ort-web-placement.ts';

export type OrtWebModule = typeof OrtWeb;
type OrtTensor = OrtWeb.Tensor;
export type OrtWebBackend = 'wasm' | 'webgpu';

export interface OrtWebOptions {
  /** The onnxruntime-web module (`import * as ort from 'onnxruntime-web'`); default: imported on first load. */
  ort?: OrtWebModule;
  /** 'wasm' (default; every platform) or 'webgpu' (browsers with `navigator.gpu`). */
  backend?: OrtWebBackend;
  /**
   * WebAssembly threads (`env.wasm.numThreads`). onnxruntime-web reads it once, when its module starts, so every
   * runner of a process must agree; browsers give threads only to cross-origin-isolated pages (COOP + COEP headers).
   * Default: onnxruntime-web's own choice (half the cores, at most 4, where threads are available).
   */
  numThreads?: number;
  /** Where onnxruntime-web's .wasm / .mjs files are served from (`env.wasm.wasmPaths`), when not beside its module. */
  wasmPaths?: string;
  /**
   * Outputs fed back as the next run's inputs, `{ output: input }` (updated weights and optimizer moments). They are
   * not returned by `run`: the runner holds them (on WebGPU in GPU buffers, `preferredOutputLocation: 'gpu-buffer'`),
   * feeds them when the input is omitted, disposes each one when it is replaced, and `readHeld` reads them back.
   */
  feedback?: Readonly<Record<string, string>>;
  /**
   * WebGPU: run nodes that have no WebGPU kernel on the CPU (onnxruntime's default, true), or refuse the step
   * (false: `session.disable_cpu_ep_fallback`); the refusal then names each such node and its IR equation when
   * onnxruntime's log can be read (see `fallbackReport`).
   */
  cpuFallback?: boolean;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
}

/** Which nodes of a step would leave the device; see `OrtWebSession.fallbackReport`. */
export interface FallbackReport {
  backend: OrtWebBackend;
  /** onnxruntime accepted the session with `session.disable_cpu_ep_fallback = 1`: every node runs on the device. */
  allOnDevice: boolean;
  /** onnxruntime's refusal (it names no node), when it refused. */
  refusal?: string;
  /** Whether onnxruntime's placement log was read: it is what names the nodes. */
  placements: 'captured' | 'not-captured' | 'not-needed';
  /** Nodes placed on the CPU provider, by ONNX node name, with the IR equation behind each. */
  cpuNodes: PlacedNode[];
  /** Nodes per execution provider as the log counts them (after onnxruntime's graph optimisations). */
  counts: Record<string, number>;
  /** Host <-> device copy nodes onnxruntime inserted (one per value crossing). */
  copies: number;
  summary: string;
}

export interface OrtWebRunner extends Runner {
  load(step: CompiledStep, options?: LoadOptions): Promise<OrtWebSession>;
}

/** A loaded step; `readHeld` and `fallbackReport` go beyond the plain `RunnerSession`. */
export interface OrtWebSession extends RunnerSession {
  /** The tensor held for a fed-back input (downloaded from the GPU on WebGPU). */
  readHeld(input: string): Promise<HostTensor>;
  /**
   * Which nodes onnxruntime places on its CPU provider instead of WebGPU. Creates the session once more with
   * `session.disable_cpu_ep_fallback = 1` (refused as soon as one node would fall back; the refusal names none), and
   * when refused once more at verbose log level to read onnxruntime's "Node placements" log, which names each node.
   * It reports placement, not cause: nodes without a WebGPU kernel and nodes onnxruntime moves to the CPU on purpose
   * (int64 shape arithmetic) look the same. The log is read only in browsers (see ort-web-placement.ts).
   */
  fallbackReport(): Promise<FallbackReport>;
}

const TO_ORT: Partial<Record<DType, OrtWeb.Tensor.Type>> = {
  float32: 'float32', float16: 'float16', int64: 'int64', int32: 'int32', int8: 'int8', uint8: 'uint8', uint16: 'uint16', bool: 'bool', float64: 'float64',
};

function toOrt(ort: OrtWebModule, name: string, t: HostTensor): OrtTensor {
  const type = TO_ORT[t.dtype];
  if (!type) throw new Error(`input '${name}': dtype ${t.dtype} cannot be fed to onnxruntime-web`);
  return new ort.Tensor(type, t.data as OrtWeb.Tensor.DataType, t.shape);
}

async function toHost(t: OrtTensor): Promise<HostTensor> {
  const d = (t.location === 'cpu' ? t.data : await t.getData()) as ArrayBufferView & { length: number };
  // Host tensors hold float16 as Uint16 bits; onnxruntime-common hands out a Float16Array where the runtime has one.
  const data = t.type === 'float16' && !(d instanceof Uint16Array) ? new Uint16Array(d.buffer, d.byteOffset, d.length) : d;
  return { dtype: t.type as DType, shape: [...t.dims], data: data as HostTensor['data'] };
}

let threadsSet: number | undefined;

function configure(ort: OrtWebModule, o: OrtWebOptions): void {
  if (o.numThreads !== undefined) {
    if (threadsSet !== undefined && threadsSet !== o.numThreads) {
      throw new Error(`onnxruntime-web: numThreads ${o.numThreads} asked after ${threadsSet}; the wasm module reads it once per process, so every runner must use the same value`);
    }
    threadsSet = o.numThreads;
    ort.env.wasm.numThreads = o.numThreads;
  }
  if (o.wasmPaths) ort.env.wasm.wasmPaths = o.wasmPaths;
}

/** onnxruntime-web as a `Runner` (see the module comment). */
export function ortWebRunner(options: OrtWebOptions = {}): OrtWebRunner {
  const backend = options.backend ?? 'wasm';
  installLogTap(); // before onnxruntime-web's wasm module starts: it binds console.error then
  let ortModule: OrtWebModule | undefined = options.ort;
  const getOrt = async () => (ortModule ??= await import('onnxruntime-web'));
  /** Stores by id: what their sessions hold (on WebGPU in GPU buffers), and how many sessions use each. */
  const stores = new Map<string, { held: Map<string, OrtTensor>; sessions: number }>();

  return {
    name: `onnxruntime-web (${backend})`,
    holdsOutputs: true,
    sharesStores: true,
    async load(step, loadOptions: LoadOptions = {}) {
      const storeId = loadOptions.store;
      const feedback = Object.entries(loadFeedback(step, 'onnxruntime-web', storeId !== undefined, options.feedback, loadOptions.feedback));
      const ort = await getOrt();
      configure(ort, options);
      if (backend === 'webgpu' && !(typeof navigator !== 'undefined' && 'gpu' in navigator)) {
        throw new Error('onnxruntime-web: WebGPU is not available here (no navigator.gpu); use backend: "wasm", or a browser with WebGPU');
      }

      const base: OrtWeb.InferenceSession.SessionOptions = {
        executionProviders: [backend],
        // As on onnxruntime-node: its contrib fusions have float32 kernels only, so float64 graphs get 'basic'.
        graphOptimizationLevel: options.graphOptimizationLevel ?? ([...step.inputs, ...step.outputs].some((v) => v.dtype === 'float64') ? 'basic' : 'all'),
      };
      const create = (extra: OrtWeb.InferenceSession.SessionOptions = {}) => {
        const o = { ...base, ...extra };
        return 'bytes' in step.model ? ort.InferenceSession.create(step.model.bytes, o) : ort.InferenceSession.create(step.model.path, o);
      };
      const strict = backend === 'webgpu' && options.cpuFallback === false;
      let session: OrtWeb.InferenceSession;
      try {
        session = await create({
          ...(backend === 'webgpu' && feedback.length ? { preferredOutputLocation: Object.fromEntries(feedback.map(([o]) => [o, 'gpu-buffer' as const])) } : {}),
          ...(strict ? NO_CPU_FALLBACK : {}),
        });
      } catch (e) {
        if (strict && isFallbackRefusal(e)) throw new Error(`onnxruntime-web (webgpu), CPU fallback disabled: ${await refusalDetail(backend, step, create)}`, { cause: e });
        throw explainRuntimeError(e, step, `load the compiled graph on onnxruntime-web (${backend})`);
      }

      // input name -> the output of the previous run that feeds it; shared by the sessions of a store
      let store = storeId === undefined ? undefined : stores.get(storeId);
      if (storeId !== undefined && !store) stores.set(storeId, (store = { held: new Map(), sessions: 0 }));
      if (store) store.sessions++;
      const held = store?.held ?? new Map<string, OrtTensor>();
      const fedBack = new Set(feedback.map(([o]) => o));
      return {
        async run(feeds) {
          const ortFeeds: Record<string, OrtTensor> = {};
          const missing: string[] = [];
          for (const { name, dtype, dims } of step.inputs) {
            const f = feeds[name];
            const h = held.get(name);
            if (f) ortFeeds[name] = toOrt(ort, name, f);
            else if (h) {
              // Another session of the store may have put a tensor of another shape under this name.
              if (h.type !== dtype || h.dims.join() !== dims.join()) throw new Error(`onnxruntime-web: the store holds '${name}' as ${h.type}[${h.dims}], the input is ${dtype}[${dims}]`);
              ortFeeds[name] = h;
            } else missing.push(name);
          }
          if (missing.length) throw new Error(`onnxruntime-web: inputs neither fed nor held from a previous run: ${missing.join(', ')}`);
          let results: OrtWeb.InferenceSession.ReturnType;
          try {
            results = await session.run(ortFeeds);
          } catch (e) {
            throw explainRuntimeError(e, step, `run the compiled graph on onnxruntime-web (${backend})`);
          }
          for (const [output, input] of feedback) {
            const previous = held.get(input), next = results[output];
            if (!next) throw new Error(`onnxruntime-web: the run returned no '${output}' to feed back as '${input}'`);
            held.set(input, next);
            previous?.dispose(); // fed to the run that just finished, replaced now
          }
          const out: Record<string, HostTensor> = {};
          for (const [name, t] of Object.entries(results)) if (!fedBack.has(name)) out[name] = await toHost(t);
          return out;
        },
        async readHeld(input) {
          const t = held.get(input);
          if (!t) throw new Error(`onnxruntime-web: nothing held for input '${input}' (held: ${[...held.keys()].join(', ') || 'none'})`);
          return toHost(t);
        },
        fallbackReport: () => fallbackReport(backend, step, create),
        async release() {
          // A store's tensors go with its last session.
          if (!store || --store.sessions === 0) {
            for (const t of held.values()) t.dispose();
            held.clear();
            if (storeId !== undefined) stores.delete(storeId);
          }
          await session.release();
        },
      };
    },
  };
}

const NO_CPU_FALLBACK: OrtWeb.InferenceSession.SessionOptions = { extra: { session: { disable_cpu_ep_fallback: '1' } } };
const isFallbackRefusal = (e: unknown) => /fallback/i.test(e instanceof Error ? e.message : String(e));

/** Why a session with CPU fallback disabled was refused: the report's summary and each CPU node's origin. */
async function refusalDetail(
  backend: OrtWebBackend,
  step: CompiledStep,
  create: (extra?: OrtWeb.InferenceSession.SessionOptions) => Promise<OrtWeb.InferenceSession>,
): Promise<string> {
  const report = await fallbackReport(backend, step, create);
  return [report.summary, ...report.cpuNodes.map((n) => `  ${formatPlacedNode(n)}`)].join('\n');
}

async function fallbackReport(
  backend: OrtWebBackend,
  step: CompiledStep,
  create: (extra?: OrtWeb.InferenceSession.SessionOptions) => Promise<OrtWeb.InferenceSession>,
): Promise<FallbackReport> {
  const none = { cpuNodes: [], counts: {}, copies: 0 };
  if (backend === 'wasm') {
    return { backend, allOnDevice: true, placements: 'not-needed', ...none, summary: 'wasm: every node runs on the CPU (the wasm provider); there is no device to fall back from' };
  }
  try {
    await (await create(NO_CPU_FALLBACK)).release();
    return { backend, allOnDevice: true, placements: 'not-needed', ...none, summary: 'every node runs on WebGPU (accepted with session.disable_cpu_ep_fallback = 1)' };
  } catch (e) {
    const refusal = e instanceof Error ? e.message : String(e);
    if (!isFallbackRefusal(e)) throw explainRuntimeError(e, step, 'load the compiled graph on onnxruntime-web (webgpu)');
    if (!logCapturable()) {
      return {
        backend, allOnDevice: false, refusal, placements: 'not-captured', ...none,
        summary: 'some nodes fall back to the CPU; which ones is not known here: outside a browser onnxruntime-web writes its log to file descriptor 2',
      };
    }
    const { lines } = await captureLog(async () => (await create({ logSeverityLevel: 0, logVerbosityLevel: 0 })).release());
    const placed = parsePlacements(lines, step.origins);
    if (!placed) {
      return {
        backend, allOnDevice: false, refusal, placements: 'not-captured', ...none,
        summary: 'some nodes fall back to the CPU; which ones is not known here: onnxruntime-web\'s log was not captured '
          + '(its wasm module started before the first onnxruntime-web runner was created)',
      };
    }
    return { backend, allOnDevice: false, refusal, placements: 'captured', ...placed, summary: `${describeCpuNodes(placed.cpuNodes)}, ${placed.copies} host<->device copies` };
  }
}
