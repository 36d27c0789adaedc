/**
 * onnxruntime's C API as Bun reaches it (bun:ffi): the library onnxruntime-node ships, its table of functions, the
 * process's environment, and the shared arena (`sharedArena`). runners/ort-ffi.ts makes sessions with it.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';

export type Pointer = number;
type Fn = (...args: unknown[]) => unknown;

/** The OrtApi functions used, by their index in the struct of function pointers (onnxruntime_c_api.h; it only grows). */
const API_INDEX = {
  GetErrorMessage: 2, CreateEnv: 3, CreateSession: 7, CreateSessionFromArray: 8, Run: 9, CreateSessionOptions: 10,
  EnableMemPattern: 16, DisableMemPattern: 17, EnableCpuMemArena: 18, DisableCpuMemArena: 19,
  SetSessionGraphOptimizationLevel: 23, SetIntraOpNumThreads: 24, CreateTensorWithDataAsOrtValue: 49,
  GetTensorMutableData: 51, GetTensorElementType: 60, GetDimensionsCount: 61, GetDimensions: 62, GetTensorTypeAndShape: 65,
  CreateCpuMemoryInfo: 69, ReleaseStatus: 93, ReleaseMemoryInfo: 94, ReleaseSession: 95, ReleaseValue: 96,
  ReleaseTensorTypeAndShapeInfo: 99, ReleaseSessionOptions: 100,
  AddSessionConfigEntry: 130, CreateAndRegisterAllocator: 144, CreateArenaCfg: 156, ReleaseArenaCfg: 157,
  SessionGetInputCount: 30, SessionGetOutputCount: 31, SessionGetInputName: 36, SessionGetOutputName: 37,
  AllocatorFree: 76, GetAllocatorWithDefaultOptions: 78,
} as const;
/** The API version asked for: onnxruntime 1.17's (every function above exists there), served by any later library. */
const API_VERSION = 17;
export const LEVEL = { disabled: 0, basic: 1, extended: 2, all: 99 } as const;
const ORT_LOGGING_LEVEL_WARNING = 2;

export interface Api {
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

/** The API, loaded on first call; undefined where it cannot load (`ortFfiUnavailable` says why). */
export async function loadApi(): Promise<Api | undefined> {
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
      CreateCpuMemoryInfo: [[I32, I32, P]], ReleaseStatus: [[P], VOID], ReleaseMemoryInfo: [[P], VOID],
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
export function registerSharedArena(a: Api): void {
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

export const cString = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');

/** Throws onnxruntime's message when a call returned an error status. */
export function check(a: Pick<Api, 'call'>, status: unknown, what: string): void {
  if (!status) return;
  const message = String(a.call.GetErrorMessage(status));
  a.call.ReleaseStatus(status);
  throw new Error(`${what}: ${message}`);
}

/** Calls `f` with a one-pointer out slot and returns what it wrote there. */
export function created(a: Pick<Api, 'call'>, f: (out: BigUint64Array) => unknown, what: string): Pointer {
  const out = new BigUint64Array(1);
  check(a, f(out), what);
  return Number(out[0]);
}

/** The session's input or output names, in its order. */
export function sessionNames(a: Api, session: Pointer, kind: 'Input' | 'Output'): string[] {
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

