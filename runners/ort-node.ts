import * as ort from 'onnxruntime-node';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPlacement, type NodePlacement } from './ort-node-placement.ts';
import { ortFfiSession, ortFfiUnavailable } from './ort-ffi.ts';
import type { DType } from '../core/ir/dtype.ts';
import type { HostTensor } from '../core/ir/host.ts';
import { explainRuntimeError, type CompiledStep, type Runner, type RunnerSession } from './types.ts';

export interface OrtNodeOptions {
  /**
   * 'cpu' (default) or 'webgpu': onnxruntime-node's bundled WebGPU provider (Dawn; on Linux x64 it needs a Vulkan
   * driver with Dawn's required features). Nodes it has no kernel for (float64, some int64 arithmetic) run on the CPU.
   */
  provider?: 'cpu' | 'webgpu';
  /** Execution providers in order of preference (overrides `provider`). */
  executionProviders?: string[];
  intraOpNumThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * onnxruntime's CPU memory arena keeps each session's peak allocation for reuse. Off by default: memory is then
   * returned after every run, so several sessions (one per batch shape) do not each hold a peak, and the process's
   * memory follows the planner's prediction. On: ~15% faster steps on tiny models, where allocation dominates.
   */
  memArena?: boolean;
  /**
   * onnxruntime's memory pattern: after the first run it lays out every intermediate in one pre-planned block. Off by
   * default: on training graphs that block is larger than the dynamic peak (measured +460 MB, 4.48 vs 4.02 GB peak,
   * on a SmolLM2-135M full fine-tuning step at 4 x 256), at no measurable speed difference.
   */
  memPattern?: boolean;
  /**
   * Called once per session, after its first run, with where onnxruntime ran its nodes (ort-node-placement.ts), when
   * the providers are not only the CPU and `profilePrefix` is not set: the nodes its GPU provider has no kernel for,
   * which it runs on the CPU without saying so, and the copies that costs.
   */
  onPlacement?: (placement: NodePlacement, step: CompiledStep) => void;
  /**
   * Write onnxruntime's per-node profile (Chrome trace JSON: one event per node run, with its op type and duration)
   * to `<prefix>_<date>.json` when the session is released. For finding which nodes a step's time goes to.
   */
  profilePrefix?: string;
  /**
   * How sessions on the CPU provider are driven: 'c-api' calls onnxruntime's C API through bun:ffi (runners/ort-ffi.ts),
   * which writes outputs given in `into` straight into them; 'node' uses onnxruntime-node's binding, which copies every
   * output after a run, those included. Default: 'c-api' where it loads (Bun), else 'node'; the environment variable TUNEFORGE_ORT_BINDING
   * (c-api or node) sets the default. Profiling and GPU providers always use the binding.
   */
  binding?: 'c-api' | 'node';
  /**
   * One onnxruntime memory arena for every session of this process that asks for it (C API only): the memory a
   * step's intermediates free is reused by the next step, of any batch shape, instead of being unmapped and faulted in
   * again. Faster, at a higher peak, and the arena keeps its size while the process lives (the trainer's
   * memory.arena; measured figures in docs/memory-planner.md). Such a runner also keeps a run's training state in
   * one store for all its sessions (`sharesStores`), so train.optimizerOn 'device' fuses the update into the step.
   */
  sharedArena?: boolean;
}

type OrtType = ort.Tensor.Type;
const TO_ORT: Partial<Record<DType, OrtType>> = {
  float32: 'float32', float64: 'float64', float16: 'float16', int64: 'int64', int32: 'int32', int8: 'int8', uint8: 'uint8', uint16: 'uint16', bool: 'bool',
};

function toOrt(name: string, t: HostTensor): ort.Tensor {
  const type = TO_ORT[t.dtype];
  if (!type) throw new Error(`input '${name}': dtype ${t.dtype} cannot be fed to onnxruntime-node`);
  const tensor = new ort.Tensor(type, t.data as ort.Tensor.DataType, t.shape);
  if (type === 'float16') keepFloat16Bits(tensor, t.data as Uint16Array);
  return tensor;
}

/**
 * Where the runtime has Float16Array (Bun), onnxruntime-common wraps float16 bits in one, which onnxruntime-node's
 * native binding reads as 0 bytes ("not enough space: expected N, got 0"); it reads the bits from a Uint16Array. The
 * tensor keeps its data in `cpuData` (onnxruntime-common 1.30); put the Uint16Array back there.
 */
function keepFloat16Bits(tensor: ort.Tensor, bits: Uint16Array): void {
  const holder = tensor as unknown as { cpuData?: unknown };
  if (holder.cpuData === undefined || holder.cpuData instanceof Uint16Array) return;
  holder.cpuData = bits;
  if (tensor.data !== bits) throw new Error('onnxruntime-node: cannot feed float16 bits on this runtime (onnxruntime-common no longer keeps tensor data in cpuData)');
}

function fromOrt(t: ort.Tensor): HostTensor {
  const dtype = t.type === 'float16' ? 'float16' : (t.type as DType);
  const d = t.data as ArrayBufferView & { length: number };
  // float16 outputs come as Float16Array where the runtime has one; host tensors hold float16 as Uint16 bits.
  const data = dtype === 'float16' && !(d instanceof Uint16Array) ? new Uint16Array(d.buffer, d.byteOffset, d.length) : d;
  return { dtype, shape: [...t.dims], data: data as HostTensor['data'] };
}

/** Ends the first run's profile and reports it; a profile that cannot be read is reported as such, never thrown. */
async function reportPlacement(session: ort.InferenceSession, dir: string, step: CompiledStep, report: NonNullable<OrtNodeOptions['onPlacement']>): Promise<void> {
  let placement: NodePlacement;
  try {
    await session.endProfiling();
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new Error('onnxruntime wrote no profile');
    placement = readPlacement(join(dir, file), step.origins);
  } catch (e) {
    placement = { counts: {}, cpuNodes: [], copies: 0, summary: `placement unknown: ${(e as Error).message.split('\n')[0]}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report(placement, step);
}

/** onnxruntime-node's WebGPU provider could not start: say why, and what to install. */
function webgpuUnavailable(e: unknown): Error | undefined {
  const message = e instanceof Error ? e.message : String(e);
  if (!/WebGpuContext::Initialize|adapter|vulkan|dawn/i.test(message)) return undefined; // a graph problem, not the provider
  return new Error(
    `onnxruntime-node's WebGPU provider could not be created: ${message}\n`
      + '  It runs on Dawn, which needs a GPU driver: on Linux a Vulkan loader and driver (Debian/Ubuntu: the GPU vendor\'s '
      + 'driver, or Mesa\'s software lavapipe (Mesa 25 works): `apt-get install libvulkan1 mesa-vulkan-drivers`, on Debian 12 '
      + 'from bookworm-backports, see .ci/lavapipe.sh; Dawn refuses Mesa 22\'s), D3D12 on Windows, Metal on macOS. Without one, use provider: \'cpu\'.',
    { cause: e },
  );
}

/** Whether CPU sessions go through the C API: asked for, or by default where it loads. Asked for and missing: an error. */
async function useCApi(binding: OrtNodeOptions['binding']): Promise<boolean> {
  const env = process.env.TUNEFORGE_ORT_BINDING;
  if (binding === undefined && env !== undefined && env !== 'c-api' && env !== 'node') throw new Error(`TUNEFORGE_ORT_BINDING: c-api or node, got '${env}'`);
  const wanted = binding ?? (env as OrtNodeOptions['binding'] | undefined);
  if (wanted === 'node') return false;
  const why = await ortFfiUnavailable();
  if (why && wanted === 'c-api') throw new Error(`binding 'c-api' asked for, but ${why}; use binding 'node'`);
  return why === undefined;
}

/** The default runner: onnxruntime-node on the CPU (its WebGPU provider can be asked for where a GPU exists). */
export function ortNodeRunner(options: OrtNodeOptions = {}): Runner {
  return {
    name: options.provider === 'webgpu' ? 'onnxruntime-node (webgpu)' : options.sharedArena ? 'onnxruntime-node (shared arena)' : 'onnxruntime-node',
    ...(options.sharedArena ? { sharesStores: true } : {}),
    async load(step: CompiledStep): Promise<RunnerSession> {
      // onnxruntime's contrib fusions (QuickGelu, ...) have float32 kernels only and break float64 graphs, so those
      // (our numerical checks) get the basic level: constant folding and redundancy removal, no fusions.
      const float64 = [...step.inputs, ...step.outputs].some((v) => v.dtype === 'float64');
      const sessionOptions: ort.InferenceSession.SessionOptions = {
        executionProviders: options.executionProviders ?? [options.provider ?? 'cpu'],
        graphOptimizationLevel: options.graphOptimizationLevel ?? (float64 ? 'basic' : 'all'),
        enableCpuMemArena: options.memArena ?? false,
        enableMemPattern: options.memPattern ?? false,
        ...(options.intraOpNumThreads ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
        ...(options.profilePrefix ? { enableProfiling: true, profileFilePrefix: options.profilePrefix } : {}),
      };
      const onDevice = sessionOptions.executionProviders!.some((p) => (typeof p === 'string' ? p : p.name) !== 'cpu');
      const cApi = !onDevice && !options.profilePrefix && await useCApi(options.binding);
      if (options.sharedArena && !cApi) throw new Error(`ortNodeRunner: sharedArena needs onnxruntime's C API on the CPU provider (Bun, no profilePrefix)${onDevice ? ', not a GPU provider' : ''}`);
      if (cApi) {
        return ortFfiSession(step, {
          ...(options.sharedArena ? { sharedArena: true } : {}),
          graphOptimizationLevel: sessionOptions.graphOptimizationLevel as 'disabled' | 'basic' | 'extended' | 'all',
          memArena: sessionOptions.enableCpuMemArena!, memPattern: sessionOptions.enableMemPattern!,
          ...(options.intraOpNumThreads ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
        });
      }
      // The first run is profiled to see where each node ran; endProfiling after it stops the profiler.
      let placementDir = options.onPlacement && onDevice && !options.profilePrefix ? mkdtempSync(join(tmpdir(), 'tuneforge-placement-')) : undefined;
      if (placementDir) Object.assign(sessionOptions, { enableProfiling: true, profileFilePrefix: join(placementDir, 'first-run') });
      let session: ort.InferenceSession;
      try {
        session = 'bytes' in step.model
          ? await ort.InferenceSession.create(step.model.bytes, sessionOptions)
          : await ort.InferenceSession.create(step.model.path, sessionOptions);
      } catch (e) {
        if (sessionOptions.executionProviders?.includes('webgpu')) throw webgpuUnavailable(e) ?? explainRuntimeError(e, step, 'load the compiled graph on WebGPU');
        throw explainRuntimeError(e, step, 'load the compiled graph');
      }
      return {
        async run(feeds, { into } = {}) {
          const ortFeeds: Record<string, ort.Tensor> = {};
          for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrt(name, t);
          // Every output is fetched: null ones into new buffers, the others into the caller's (pre-allocated outputs).
          const fetches: Record<string, ort.Tensor | null> = {};
          for (const name of session.outputNames) fetches[name] = into?.[name] ? toOrt(name, into[name]) : null;
          let results: ort.InferenceSession.ReturnType;
          try {
            results = await session.run(ortFeeds, fetches);
          } catch (e) {
            throw explainRuntimeError(e, step, 'run the compiled graph');
          }
          const out: Record<string, HostTensor> = {};
          for (const [name, t] of Object.entries(results)) out[name] = into?.[name] ?? fromOrt(t);
          if (placementDir) {
            const dir = placementDir;
            placementDir = undefined;
            await reportPlacement(session, dir, step, options.onPlacement!);
          }
          return out;
        },
        release: async () => {
          if (placementDir) rmSync(placementDir, { recursive: true, force: true });
          await session.release();
        },
      };
    },
  };
}
