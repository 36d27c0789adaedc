/**
 * onnxruntime's C API called straight from Bun (bun:ffi), on the library onnxruntime-node ships: the same kernels as
 * runners/ort-node.ts, without its binding's copies. onnxruntime-node 1.30 copies every output into a new
 * JavaScript buffer after a run, outputs pre-allocated by the caller included (its `OrtValueToNapiValue`), so an
 * output costs a fresh allocation, its page faults and a pass over memory, and a pre-allocated one costs that on
 * top of the write. Here an output the caller gives (`into`: the device optimizer's new weights and moments, held
 * state written over itself) is written by onnxruntime where it goes, with no copy; the others are copied once out
 * of onnxruntime's buffers, as the binding does.
 *
 * Measured (a one-off profile of the device optimizer's AdamW update of SmolLM2-135M, in pieces written in place):
 * 70% of its page faults were that copy.
 *
 * Only the CPU provider, only on Bun, where onnxruntime-node ships the library (Linux x64 and arm64, macOS arm64,
 * Windows); `ortFfiUnavailable` says why not elsewhere, and ortNodeRunner falls back to the binding.
 */
import { DTYPES, typedArrayFor, type DType } from '../core/ir/dtype.ts';
import type { HostTensor } from '../core/ir/host.ts';
import { explainRuntimeError, type CompiledStep, type RunnerSession, type RunOptions } from './types.ts';
import { LEVEL, check, created, cString, loadApi, ortFfiUnavailable, registerSharedArena, sessionNames, type Pointer } from './ort-capi.ts';

export { ortFfiUnavailable };

/** What a session is created with (the CPU provider's part of OrtNodeOptions). */
export interface OrtFfiSessionOptions {
  intraOpNumThreads?: number;
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  memArena: boolean;
  memPattern: boolean;
  /** Allocate from the process's shared arena (ort-capi.ts `registerSharedArena`) instead of the session's own. */
  sharedArena?: boolean;
}

const ONNX_TO_DTYPE = new Map<number, DType>(Object.entries(DTYPES).map(([d, info]) => [info.onnx, d as DType]));
/** A non-null address for empty tensors (onnxruntime wants one; it reads no byte of it). */
const EMPTY = new Uint8Array(8);

/** A session of the C API: `via` tells it from the binding's. */
export interface OrtFfiSession extends RunnerSession {
  readonly via: 'c-api';
  /** The input and output names as C strings, which onnxruntime reads through raw pointers at every run. */
  readonly names: readonly (readonly Buffer[])[];
}

/** Loads a compiled step as a session of the C API. Callers check `ortFfiUnavailable()` first. */
export async function ortFfiSession(step: CompiledStep, options: OrtFfiSessionOptions): Promise<OrtFfiSession> {
  const a = await loadApi();
  if (!a) throw new Error(`onnxruntime C API: ${await ortFfiUnavailable()}`);
  const { call } = a;
  const so = created(a, (out) => call.CreateSessionOptions(out), 'create session options');
  let session: Pointer;
  try {
    check(a, options.memArena ? call.EnableCpuMemArena(so) : call.DisableCpuMemArena(so), 'set the memory arena');
    check(a, options.memPattern ? call.EnableMemPattern(so) : call.DisableMemPattern(so), 'set the memory pattern');
    check(a, call.SetSessionGraphOptimizationLevel(so, LEVEL[options.graphOptimizationLevel]), 'set the optimization level');
    if (options.sharedArena) {
      registerSharedArena(a);
      check(a, call.AddSessionConfigEntry(so, cString('session.use_env_allocators'), cString('1')), 'use the shared arena');
    }
    if (options.intraOpNumThreads) check(a, call.SetIntraOpNumThreads(so, options.intraOpNumThreads), 'set the thread count');
    try {
      const model = step.model;
      session = 'bytes' in model
        ? created(a, (out) => call.CreateSessionFromArray(a.env, model.bytes, model.bytes.byteLength, so, out), 'load')
        : created(a, (out) => call.CreateSession(a.env, process.platform === 'win32' ? Buffer.from(`${model.path}\0`, 'utf16le') : cString(model.path), so, out), 'load');
    } catch (e) {
      throw explainRuntimeError(e, step, 'load the compiled graph');
    }
  } finally {
    call.ReleaseSessionOptions(so);
  }
  // The session's own names: a step may list none (a provider probe does).
  const input = sessionNames(a, session, 'Input'), output = sessionNames(a, session, 'Output');
  const inputNames = input.map(cString), outputNames = output.map(cString);
  const namePointers = (names: Buffer[]) => BigUint64Array.from(names, (b) => BigInt(a.ptr(b)));
  const inputNamePtrs = namePointers(inputNames), outputNamePtrs = namePointers(outputNames);
  let released = false;

  /** An OrtValue over a host tensor's own memory (no copy); released after the run, the memory stays the caller's. */
  const wrap = (name: string, t: HostTensor): Pointer => {
    const type = DTYPES[t.dtype]?.onnx;
    if (type === undefined) throw new Error(`input '${name}': dtype ${t.dtype} cannot be fed to onnxruntime`);
    const shape = BigInt64Array.from(t.shape, BigInt);
    const bytes = t.data.byteLength;
    return created(a, (out) => call.CreateTensorWithDataAsOrtValue(a.cpu, bytes ? t.data : EMPTY, bytes, shape.length ? shape : EMPTY, shape.length, type, out), `tensor '${name}'`);
  };

  /** An output onnxruntime allocated: copied into a new array (released after the run). */
  const readOwned = (value: Pointer): HostTensor => {
    const info = created(a, (out) => call.GetTensorTypeAndShape(value, out), 'read an output\'s shape');
    try {
      const count = new BigUint64Array(1), type = new Int32Array(1);
      check(a, call.GetDimensionsCount(info, count), 'read an output\'s rank');
      const dims = new BigInt64Array(Math.max(1, Number(count[0])));
      check(a, call.GetDimensions(info, dims, count[0]), 'read an output\'s dims');
      check(a, call.GetTensorElementType(info, type), 'read an output\'s type');
      const dtype = ONNX_TO_DTYPE.get(type[0]!);
      if (!dtype) throw new Error(`an output has ONNX element type ${type[0]}, which has no host dtype`);
      const shape = [...dims.subarray(0, Number(count[0]))].map(Number);
      const data = typedArrayFor(dtype, shape.reduce((x, y) => x * y, 1));
      if (data.byteLength) {
        const at = created(a, (out) => call.GetTensorMutableData(value, out), 'read an output');
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(new Uint8Array(a.toArrayBuffer(at, 0, data.byteLength)));
      }
      return { dtype, shape, data };
    } finally {
      call.ReleaseTensorTypeAndShapeInfo(info);
    }
  };

  return {
    via: 'c-api',
    // Held by the session: the collector does not see onnxruntime's pointers to them.
    names: [inputNames, outputNames],
    async run(feeds: Readonly<Record<string, HostTensor>>, { into }: RunOptions = {}) {
      // A macrotask first, as onnxruntime-node's run does: the run blocks this thread, and what waits (a stream's
      // next write, another request) gets its turn between runs.
      await new Promise((resolve) => setImmediate(resolve));
      if (released) throw new Error('onnxruntime C API: run on a released session');
      const values: Pointer[] = [];
      const outputs = new BigUint64Array(output.length);
      try {
        const extra = Object.keys(feeds).filter((name) => !input.includes(name));
        if (extra.length) throw new Error(`onnxruntime C API: fed ${extra.map((n) => `'${n}'`).join(', ')}, which the graph has no input for`);
        const inputs = new BigUint64Array(input.length);
        input.forEach((name, i) => {
          const t = feeds[name];
          if (!t) throw new Error(`onnxruntime C API: input '${name}' was not fed`);
          values.push(Number(inputs[i] = BigInt(wrap(name, t))));
        });
        // Outputs given in `into` are written there by onnxruntime; the others it allocates, and they are copied out.
        // (Handing it new arrays for those too was slower on small models: 16.5k against 23.7k tokens/s on
        // stories260k full fine-tuning, where a step's 48 outputs are small and many.)
        output.forEach((name, o) => {
          const target = into?.[name];
          if (target) values.push(Number(outputs[o] = BigInt(wrap(name, target))));
        });
        try {
          check(a, call.Run(session, null, inputNamePtrs, inputs, inputs.length, outputNamePtrs, outputs.length, outputs), 'run');
        } catch (e) {
          throw explainRuntimeError(e, step, 'run the compiled graph');
        }
        // Every output onnxruntime allocated is released below, even when reading an earlier one fails.
        output.forEach((name, o) => { if (!into?.[name]) values.push(Number(outputs[o])); });
        return Object.fromEntries(output.map((name, o) => [name, into?.[name] ?? readOwned(Number(outputs[o]))]));
      } finally {
        for (const v of values) if (v) call.ReleaseValue(v);
      }
    },
    async release() {
      if (released) return;
      released = true;
      call.ReleaseSession(session);
    },
  };
}
