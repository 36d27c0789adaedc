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
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { DTYPES, typedArrayFor, type DType } from '../core/ir/dtype.ts';
import type { HostTensor } from '../core/ir/host.ts';
import { explainRuntimeError, type CompiledStep, type RunnerSession, type RunOptions } from './types.ts';

/** What a session is created with (the CPU provider's part of OrtNodeOptions). */
export interface OrtFfiSessionOptions {
  intraOpNumThreads?: number;
  graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  memArena: boolean;
  memPattern: boolean;
  /** Allocate from one arena shared by every session made with it (`sharedArena` below) instead of the session's own. */
  sharedArena?: boolean;
}

type Pointer = number;
type Fn = (...args: unknown[]) => unknown;

/** The OrtApi functions used, by their index in the struct of function pointers (onnxruntime_c_api.h; it only grows). */
const API_INDEX = {
  GetErrorMessage: 2, CreateEnv: 3, CreateSession: 7, CreateSessionFromArray: 8, Run: 9, CreateSessionOptions: 10,
  EnableMemPattern: 16, DisableMemPattern: 17, EnableCpuMemArena: 18, DisableCpuMemArena: 19,
  SetSessionGraphOptimizationLevel: 23, SetIntraOpNumThreads: 24, CreateTensorWithDataAsOrtValue: 49,
  GetTensorMutableData: 51, GetTensorElementType: 60, GetDimensionsCount: 61, GetDimensions: 62, GetTensorTypeAndShape: 65,
  CreateCpuMemoryInfo: 69, ReleaseEnv: 92, ReleaseStatus: 93, ReleaseMemoryInfo: 94, ReleaseSession: 95, ReleaseValue: 96,
  ReleaseTensorTypeAndShapeInfo: 99, ReleaseSessionOptions: 100,
  AddSessionConfigEntry: 130, CreateAndRegisterAllocator: 144, CreateArenaCfg: 156, ReleaseArenaCfg: 157,
  SessionGetInputCount: 30, SessionGetOutputCount: 31, SessionGetInputName: 36, SessionGetOutputName: 37,
  AllocatorFree: 76, GetAllocatorWithDefaultOptions: 78,
} as const;
/** The API version asked for: onnxruntime 1.17's (every function above exists there), served by any later library. */
const API_VERSION = 17;
const LEVEL = { disabled: 0, basic: 1, extended: 2, all: 99 } as const;
const ORT_LOGGING_LEVEL_WARNING = 2;

interface Api {
  readonly call: { readonly [K in keyof typeof API_INDEX]: Fn };
  readonly env: Pointer;
  readonly cpu: Pointer;
  readonly toArrayBuffer: (ptr: Pointer, offset: number, length: number) => ArrayBuffer;
  readonly ptr: (view: ArrayBufferView) => Pointer;
  /** The C string at an address. */
  readonly string: (at: Pointer) => string;
}

let api: Api | undefined;
let unavailable: string | undefined;

/** The shared library inside onnxruntime-node's package for this platform, if it ships one. */
function libraryPath(): string | undefined {
  const dir = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  const name = { darwin: 'libonnxruntime.1.dylib', win32: 'onnxruntime.dll' }[process.platform as string] ?? 'libonnxruntime.so.1';
  const file = join(dir, 'bin', 'napi-v6', process.platform, process.arch, name);
  return existsSync(file) ? file : undefined;
}

async function loadApi(): Promise<Api | undefined> {
  if (api || unavailable) return api;
  if (typeof Bun === 'undefined') {
    unavailable = 'needs Bun (bun:ffi)';
    return undefined;
  }
  try {
    const file = libraryPath();
    if (!file) throw new Error(`onnxruntime-node ships no library for ${process.platform}-${process.arch}`);
    const ffi = await import('bun:ffi');
    const { symbols } = ffi.dlopen(file, { OrtGetApiBase: { args: [], returns: ffi.FFIType.ptr } });
    const base = symbols.OrtGetApiBase() as Pointer | null;
    if (!base) throw new Error('OrtGetApiBase returned null');
    const getApi = ffi.CFunction({ ptr: ffi.read.ptr(base, 0) as never, args: [ffi.FFIType.u32], returns: ffi.FFIType.ptr });
    const table = getApi(API_VERSION) as Pointer | null;
    if (!table) throw new Error(`the library does not serve API version ${API_VERSION}`);
    const P = ffi.FFIType.ptr, U64 = ffi.FFIType.u64, I32 = ffi.FFIType.i32, VOID = ffi.FFIType.void;
    const signatures: { readonly [K in keyof typeof API_INDEX]: [args: number[], returns?: number] } = {
      GetErrorMessage: [[P], ffi.FFIType.cstring], CreateEnv: [[I32, P, P]], CreateSession: [[P, P, P, P]],
      CreateSessionFromArray: [[P, P, U64, P, P]], Run: [[P, P, P, P, U64, P, U64, P]], CreateSessionOptions: [[P]],
      EnableMemPattern: [[P]], DisableMemPattern: [[P]], EnableCpuMemArena: [[P]], DisableCpuMemArena: [[P]],
      SetSessionGraphOptimizationLevel: [[P, I32]], SetIntraOpNumThreads: [[P, I32]],
      CreateTensorWithDataAsOrtValue: [[P, P, U64, P, U64, I32, P]], GetTensorMutableData: [[P, P]],
      GetTensorElementType: [[P, P]], GetDimensionsCount: [[P, P]], GetDimensions: [[P, P, U64]], GetTensorTypeAndShape: [[P, P]],
      CreateCpuMemoryInfo: [[I32, I32, P]], ReleaseEnv: [[P], VOID], ReleaseStatus: [[P], VOID], ReleaseMemoryInfo: [[P], VOID],
      ReleaseSession: [[P], VOID], ReleaseValue: [[P], VOID], ReleaseTensorTypeAndShapeInfo: [[P], VOID], ReleaseSessionOptions: [[P], VOID],
      SessionGetInputCount: [[P, P]], SessionGetOutputCount: [[P, P]], SessionGetInputName: [[P, U64, P, P]], SessionGetOutputName: [[P, U64, P, P]],
      AllocatorFree: [[P, P]], GetAllocatorWithDefaultOptions: [[P]],
      AddSessionConfigEntry: [[P, P, P]], CreateAndRegisterAllocator: [[P, P, P]], CreateArenaCfg: [[U64, I32, I32, I32, P]], ReleaseArenaCfg: [[P], VOID],
    };
    const call = Object.fromEntries(Object.entries(API_INDEX).map(([name, index]) => {
      const [args, returns = P] = signatures[name as keyof typeof API_INDEX];
      return [name, ffi.CFunction({ ptr: ffi.read.ptr(table, 8 * index) as never, args: args as never, returns: returns as never }) as unknown as Fn];
    })) as unknown as Api['call'];
    const partial = {
      call, toArrayBuffer: ffi.toArrayBuffer as Api['toArrayBuffer'], ptr: ffi.ptr as unknown as Api['ptr'],
      string: (at: Pointer) => new ffi.CString(at as never).toString(),
    };
    // One environment for the process (onnxruntime keeps a single one; onnxruntime-node's binding shares it).
    const env = created(partial, (out) => call.CreateEnv(ORT_LOGGING_LEVEL_WARNING, cString('tuneforge'), out), 'create the environment');
    const cpu = created(partial, (out) => call.CreateCpuMemoryInfo(0 /* OrtDeviceAllocator */, 0 /* OrtMemTypeDefault */, out), 'describe CPU memory');
    api = { ...partial, env, cpu };

  } catch (e) {
    unavailable = `onnxruntime's C API did not load: ${(e as Error).message}`;
  }
  return api;
}

let arenaRegistered = false;

/**
 * The process's shared CPU arena, registered with the environment on first use: sessions made with `sharedArena`
 * allocate from it, so memory one run frees is reused by the next run of any of them instead of being unmapped and
 * page-faulted in again. It grows by what is asked (not onnxruntime's default doubling) and is never given back
 * while the process lives.
 */
function registerSharedArena(a: Api): void {
  if (arenaRegistered) return;
  const SAME_AS_REQUESTED = 1, DEFAULT = -1, ARENA_ALLOCATOR = 1, MEM_TYPE_DEFAULT = 0;
  const cfg = created(a, (out) => a.call.CreateArenaCfg(0, SAME_AS_REQUESTED, DEFAULT, DEFAULT, out), 'configure the shared arena');
  try {
    const info = created(a, (out) => a.call.CreateCpuMemoryInfo(ARENA_ALLOCATOR, MEM_TYPE_DEFAULT, out), 'describe the shared arena');
    try {
      check(a, a.call.CreateAndRegisterAllocator(a.env, info, cfg), 'register the shared arena');
    } finally {
      a.call.ReleaseMemoryInfo(info);
    }
  } finally {
    a.call.ReleaseArenaCfg(cfg);
  }
  arenaRegistered = true;
}

/** Why sessions cannot be made here, or undefined when they can (loads the library on first call). */
export async function ortFfiUnavailable(): Promise<string | undefined> {
  await loadApi();
  return unavailable;
}

const cString = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');

/** Throws onnxruntime's message when a call returned an error status. */
function check(a: Pick<Api, 'call'>, status: unknown, what: string): void {
  if (!status) return;
  const message = String(a.call.GetErrorMessage(status));
  a.call.ReleaseStatus(status);
  throw new Error(`${what}: ${message}`);
}

/** Calls `f` with a one-pointer out slot and returns what it wrote there. */
function created(a: Pick<Api, 'call'>, f: (out: BigUint64Array) => unknown, what: string): Pointer {
  const out = new BigUint64Array(1);
  check(a, f(out), what);
  return Number(out[0]);
}

/** The session's input or output names, in its order. */
function sessionNames(a: Api, session: Pointer, kind: 'Input' | 'Output'): string[] {
  const count = new BigUint64Array(1);
  check(a, a.call[`SessionGet${kind}Count` as const](session, count), `count the ${kind.toLowerCase()}s`);
  const allocator = created(a, (out) => a.call.GetAllocatorWithDefaultOptions(out), 'get the default allocator');
  return Array.from({ length: Number(count[0]) }, (_, i) => {
    const at = created(a, (out) => a.call[`SessionGet${kind}Name` as const](session, i, allocator, out), `read ${kind.toLowerCase()} ${i}'s name`);
    try {
      return a.string(at);
    } finally {
      check(a, a.call.AllocatorFree(allocator, at), 'free a name');
    }
  });
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
  if (!a) throw new Error(`onnxruntime C API: ${unavailable}`);
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
      const results: (HostTensor | undefined)[] = [];
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
          results.push(target);
          if (target) values.push(Number(outputs[o] = BigInt(wrap(name, target))));
        });
        try {
          check(a, call.Run(session, null, inputNamePtrs, inputs, inputs.length, outputNamePtrs, outputs.length, outputs), 'run');
        } catch (e) {
          throw explainRuntimeError(e, step, 'run the compiled graph');
        }
        const out: Record<string, HostTensor> = {};
        output.forEach((name, o) => {
          const given = results[o];
          if (given) out[name] = given;
          else {
            const value = Number(outputs[o]);
            values.push(value);
            out[name] = readOwned(value);
          }
        });
        return out;
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
