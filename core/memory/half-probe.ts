/**
 * Measures what half-precision frozen weights (`precision.weights`) really occupy: run as its own process (the
 * tests and `bench:precision` spawn it), it reads VmRSS from /proc/self/status before and after holding every base
 * weight of the SmolLM2-135M shape, and prints one JSON line.
 *
 *   bun core/memory/half-probe.ts write <dir> <float32|float16|bfloat16>   # a random SmolLM2-135M checkpoint folder
 *   bun core/memory/half-probe.ts read <dir> <float32|float16|bfloat16>    # every weight read as the trainer reads it
 *   bun core/memory/half-probe.ts chunked <float16|bfloat16>               # no checkpoint: drawn and converted in memory
 *
 * - `read`: the trainer's loader (`openModel(dir).read(name, storage)`, core/models/load.ts): an F16 / BF16
 *   checkpoint read in its own format comes as it is; a float32 one is rounded as it is read, 4 MiB of float32 at a
 *   time, so besides the kept 2 bytes per parameter no float32 weight exists whole. Reports the RSS growth (after a full GC and
 *   malloc_trim) and the peak growth (VmHWM, reset through /proc/self/clear_refs before reading) per parameter. The
 *   model is read twice, the second copy on top of the first, and the smaller growth is the figure (as in `chunked`):
 *   the float32 transients of a converted checkpoint leave a few MiB in the allocators after the first pass, which
 *   the second pass reuses; the first pass's figure is reported beside it.
 * - `chunked`: each weight is drawn N(0, 0.02) into one reused float32 buffer and rounded to the format (the storage
 *   alone, without file reads); two rounds, the second on top of the first, and the smaller growth is kept (the RSS
 *   of a loaded machine moves by a few MiB for reasons of its own, which only ever add). plugins/nf4/memory-probe.ts
 *   measures NF4 the same way.
 */
import { writeFileSync } from 'node:fs';
import { fillNormal, procStatusBytes, settledRss } from './probe.ts';
import { join } from 'node:path';
import { castHostTensor, f32ToBf16, f32ToF16, writeSafetensors } from '../io/safetensors.ts';
import type { HostTensor } from '../ir/host.ts';
import { SMOLLM2_135M, parseConfig } from '../models/config.ts';
import { openModel } from '../models/load.ts';
import { paramSpecs, randomWeights } from '../models/params.ts';
import { DEFAULT_MMAP_THRESHOLD, fixMmapThreshold } from './allocator.ts';

export type ProbeStorage = 'float32' | 'float16' | 'bfloat16';

export interface HalfProbeResult {
  mode: 'read' | 'chunked';
  /** The checkpoint's dtype (read mode). */
  source?: ProbeStorage;
  storage: ProbeStorage;
  /** Base parameters held (every weight of the model). */
  params: number;
  /** Bytes of the arrays held, by their length. */
  heldBytes: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** RSS growth per parameter. */
  bytesPerParam: number;
  /** Read mode: peak RSS growth while reading (the first pass), per parameter. */
  peakBytesPerParam?: number;
  /** Read mode: RSS growth of the first pass alone, per parameter. */
  firstPassBytesPerParam?: number;
  /** Read mode: the largest tensor's float32 bytes (what a float32 checkpoint read into half precision adds at most). */
  largestFloat32Bytes?: number;
}



const specs = () => paramSpecs(parseConfig(SMOLLM2_135M));
const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A SmolLM2-135M-shaped folder (config.json, model.safetensors of random weights in `dtype`). */
export async function writeProbeModel(dir: string, dtype: ProbeStorage): Promise<void> {
  const weights = randomWeights(parseConfig(SMOLLM2_135M), 0);
  const stored = new Map([...weights].map(([n, t]) => [n, castHostTensor(t, dtype)]));
  await writeSafetensors(join(dir, 'model.safetensors'), stored);
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify({ ...SMOLLM2_135M, torch_dtype: dtype }, null, 2)}\n`); // read back as `source`
}

/** Every weight of the folder read as the trainer reads frozen weights in `storage`. */
export async function probeRead(dir: string, storage: ProbeStorage): Promise<HalfProbeResult> {
  // The trainer's allocator setting (core/memory/allocator.ts): freed tensor-sized blocks go back to the system.
  await fixMmapThreshold(DEFAULT_MMAP_THRESHOLD);
  const model = await openModel(dir);
  const all = specs();
  // Warm-up before the baseline: the conversion and the reads compiled to their top tier (code is not storage).
  const warm = [await model.read(all.at(-2)!.name, storage), castHostTensor({ dtype: 'float32', shape: [1 << 20], data: new Float32Array(1 << 20) }, storage)];
  const source = model.config.raw.torch_dtype as ProbeStorage | undefined;
  const readAll = async () => {
    const held: HostTensor[] = [];
    for (const s of all) held.push(await model.read(s.name, storage));
    return held;
  };
  const start = await settledRss();
  writeFileSync('/proc/self/clear_refs', '5'); // VmHWM := VmRSS
  const first = await readAll();
  const peak = procStatusBytes('VmHWM');
  const afterFirst = await settledRss();
  const second = await readAll();
  const afterSecond = await settledRss();
  await model.close();
  if (first.length !== all.length || second.length !== all.length || warm.length !== 2) throw new Error('unreachable'); // keeps them alive until here
  const [rssBeforeBytes, rssAfterBytes] = afterSecond - afterFirst < afterFirst - start ? [afterFirst, afterSecond] : [start, afterFirst];
  const params = all.reduce((n, s) => n + numel(s.shape), 0);
  return {
    mode: 'read', ...(source ? { source } : {}), storage, params, heldBytes: first.reduce((n, t) => n + t.data.byteLength, 0),
    rssBeforeBytes, rssAfterBytes, bytesPerParam: (rssAfterBytes - rssBeforeBytes) / params,
    peakBytesPerParam: (peak - start) / params, firstPassBytesPerParam: (afterFirst - start) / params,
    largestFloat32Bytes: 4 * Math.max(...all.map((s) => numel(s.shape))),
  };
}


/** The storage alone: each weight drawn into a reused float32 buffer and rounded to `format`. */
export async function probeChunked(format: 'float16' | 'bfloat16'): Promise<HalfProbeResult> {
  await fixMmapThreshold(DEFAULT_MMAP_THRESHOLD);
  const all = specs();
  const round = format === 'float16' ? f32ToF16 : f32ToBf16;
  const scratch = new Float32Array(Math.max(...all.map((s) => numel(s.shape))));
  const warm = Array.from({ length: 4 }, () => round(fillNormal(new Float32Array(1 << 20))));
  const drawAll = async () => {
    const held = all.map((s) => round(fillNormal(scratch.subarray(0, numel(s.shape)))));
    return { held, rss: await settledRss() };
  };
  let rssBeforeBytes = await settledRss();
  const first = await drawAll();
  const second = await drawAll();
  let rssAfterBytes = first.rss, held = first.held;
  if (second.rss - first.rss < first.rss - rssBeforeBytes) [rssBeforeBytes, rssAfterBytes, held] = [first.rss, second.rss, second.held];
  if (first.held.length !== second.held.length || warm.length !== 4) throw new Error('unreachable'); // keeps both rounds alive until here
  const params = all.reduce((n, s) => n + numel(s.shape), 0);
  return {
    mode: 'chunked', storage: format, params, heldBytes: held.reduce((n, a) => n + a.byteLength, 0),
    rssBeforeBytes, rssAfterBytes, bytesPerParam: (rssAfterBytes - rssBeforeBytes) / params,
  };
}

const STORAGES: readonly string[] = ['float32', 'float16', 'bfloat16'];
function storageArg(v: string | undefined): ProbeStorage {
  if (!v || !STORAGES.includes(v)) throw new Error(`expected one of ${STORAGES.join(', ')}, got ${v}`);
  return v as ProbeStorage;
}

if (import.meta.main) {
  const [mode, a, b] = process.argv.slice(2);
  if (mode === 'write') {
    await writeProbeModel(a!, storageArg(b));
    console.log(JSON.stringify({ written: a }));
  } else if (mode === 'read') {
    console.log(JSON.stringify(await probeRead(a!, storageArg(b))));
  } else if (mode === 'chunked') {
    const format = storageArg(a);
    if (format === 'float32') throw new Error('chunked: float16 or bfloat16');
    console.log(JSON.stringify(await probeChunked(format)));
  } else {
    throw new Error('usage: half-probe.ts write <dir> <dtype> | read <dir> <storage> | chunked <float16|bfloat16>');
  }
}
