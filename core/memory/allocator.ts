/**
 * Where freed memory goes: two knobs on glibc's malloc, which onnxruntime's CPU kernels allocate through (Bun's own
 * heap does not), and a full collection of the JavaScript heap.
 *
 * Why: with onnxruntime's memory-pattern planner off (our default, so that one process can run graphs of changing
 * shapes), each intermediate tensor is a separate malloc. glibc serves blocks below its mmap threshold from the heap
 * arenas, and the threshold grows at run time up to 32 MiB once a large block is freed; freed activations then stay
 * in fragmented arenas and the process's peak grows 10-15% above the sum of live tensors (bench:memory). Fixing the
 * threshold gives every large activation its own mapping, returned to the system on free, and the measured peak
 * follows the live-tensor plan again.
 *
 * The glibc calls go through bun:ffi to the C library that is already loaded; where that is not glibc (musl, macOS,
 * Windows, Node without bun:ffi) they do nothing and say so in their result.
 */

/** mallopt's parameter number for the mmap threshold (glibc's malloc.h: M_MMAP_THRESHOLD). */
const M_MMAP_THRESHOLD = -3;

/**
 * The default threshold the trainer sets: blocks of 1 MiB and more get their own mapping. Lower is closer to the
 * plan but slower on small models, whose many sub-MiB activations then fault in fresh pages every step (bench:train,
 * stories260k 16 x 64: 128 KiB ran full fine-tuning at ~0.5x the adaptive default's tokens/s, 1 MiB at ~0.8x; on
 * SmolLM2-135M the cost is a few percent). 4 MiB left stories260k's checkpointed LoRA rows 12.6% above the plan.
 */
export const DEFAULT_MMAP_THRESHOLD = 1024 * 1024;

interface Glibc {
  mallopt(param: number, value: number): number;
  malloc_trim(pad: number | bigint): number;
}

let glibc: Glibc | null | undefined;

async function loadGlibc(): Promise<Glibc | null> {
  if (glibc !== undefined) return glibc;
  glibc = null;
  // Bun first: in a browser (core/compile.ts is bundled into pages) there is no `process` to read.
  if (typeof Bun === 'undefined' || process.platform !== 'linux') return glibc;
  try {
    const { dlopen, FFIType } = await import('bun:ffi');
    const lib = dlopen('libc.so.6', {
      mallopt: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
      malloc_trim: { args: [FFIType.u64], returns: FFIType.i32 },
    });
    glibc = lib.symbols as unknown as Glibc;
  } catch {
    glibc = null; // not glibc (musl has no libc.so.6) or no FFI
  }
  return glibc;
}

/**
 * Fixes glibc's mmap threshold at `bytes` (which also stops it from growing at run time). An explicit
 * MALLOC_MMAP_THRESHOLD_ in the environment wins: glibc read it at start-up, and we leave it alone.
 * Returns the threshold in force if this call set it, `undefined` if it changed nothing.
 */
export async function fixMmapThreshold(bytes = DEFAULT_MMAP_THRESHOLD): Promise<number | undefined> {
  if (process.env.MALLOC_MMAP_THRESHOLD_ !== undefined) return undefined;
  const c = await loadGlibc();
  if (!c) return undefined;
  return c.mallopt(M_MMAP_THRESHOLD, bytes) === 1 ? bytes : undefined;
}

/** Hands free heap memory back to the system (glibc's malloc_trim); true if any was released. */
export async function trimMalloc(): Promise<boolean> {
  const c = await loadGlibc();
  return c ? c.malloc_trim(0) === 1 : false;
}

/** A full garbage collection where the runtime offers one (Bun); elsewhere nothing. */
export function collectGarbage(): void {
  (globalThis as { Bun?: { gc(full: boolean): void } }).Bun?.gc(true);
}

/** How long JavaScriptCore's scavenger takes to hand freed heap pages back: it runs about every 100 ms. */
export const SCAVENGER_SETTLE_MS = 200;

/**
 * A full collection, then a wait of two scavenger periods: a collection frees JavaScript heap pages, but the runtime
 * returns them to the system only when its background scavenger next runs (RSS, sampled every 10 ms after a
 * collection, fell in steps at about 10, 100 and 180 ms). A session compiled after released ones calls this before
 * the build: otherwise the new graph's garbage may still be resident under the session's first run, and LISA's peak
 * jumped by up to 35 MB at some switches (bench:peft-memory's 1,000 steps: growth 1.09-1.20 without the wait,
 * 1.038-1.041 with it). Elsewhere only the collection.
 */
export async function settleFreedMemory(ms = SCAVENGER_SETTLE_MS): Promise<void> {
  collectGarbage();
  if ((globalThis as { Bun?: unknown }).Bun !== undefined) await new Promise((r) => setTimeout(r, ms));
}

/**
 * After releasing sessions and state: collects the JavaScript heap (so the arrays, graphs and onnxruntime wrappers that
 * held them are gone) and then trims glibc's heaps, so the freed native memory goes back to the system instead of
 * staying as fragmented arena space under the sessions compiled next. Without the trim, each LISA switch left part of
 * the released sessions' memory in the arenas and the run's peak crept up switch after switch (bench:peft-memory).
 */
export async function releaseFreedMemory(): Promise<boolean> {
  collectGarbage();
  return trimMalloc();
}

/** The lowest threshold a run is given: below it every small tensor would fault in fresh pages on each step. */
export const MIN_MMAP_THRESHOLD = 64 * 1024;

/**
 * The threshold a run needs: the configured one, lowered for mixture-of-experts models to the largest power of two
 * not above their per-expert tensors (`expertTensorBytes`, core/models/moe.ts), so those get their own mappings too.
 * Measured (bench:memory's runner, LoRA with checkpointing, 64 experts of 256 at 2x256 and 128 of 64 at 4x128):
 * served from the heap at 1 MiB, the plan was 17% and 9% below the measured peak; at this threshold 1.2% below and
 * 3.2% above it, for 23% and 39% more step time (each expert tensor's pages are faulted in again every step).
 */
export function mmapThresholdFor(configured: number, expertTensorBytes?: number): number {
  if (expertTensorBytes === undefined || expertTensorBytes >= configured) return configured;
  const below = 2 ** Math.floor(Math.log2(Math.max(expertTensorBytes, 1)));
  return Math.min(configured, Math.max(MIN_MMAP_THRESHOLD, below));
}
