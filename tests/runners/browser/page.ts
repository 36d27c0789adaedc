/**
 * The browser side of the conformance suite: onnxruntime-web runners driven from Bun through playwright. Every call
 * takes and returns JSON-safe values (wire.ts).
 */
import * as ort from 'onnxruntime-web';
import { ortWebRunner, type FallbackReport, type OrtWebBackend, type OrtWebOptions, type OrtWebSession } from '../../../runners/ort-web.ts';
import { installLogTap } from '../../../runners/ort-web-placement.ts';
import { fromWire, mapValues, stepFromWire, toWire, type WireStep, type WireTensor } from './wire.ts';

installLogTap(); // before onnxruntime-web's wasm module starts (the first session), so its log can be read

/** The runner options that cross into the page (JSON-safe). */
export type PageRunnerOptions = Pick<OrtWebOptions, 'numThreads' | 'cpuFallback'> & { feedback?: Record<string, string> };

const sessions = new Map<number, OrtWebSession>();
let nextId = 0;
/** One runner per backend and options, so sessions loaded with a store id share it (a store is the runner's). */
const runners = new Map<string, ReturnType<typeof ortWebRunner>>();
const runnerFor = (backend: OrtWebBackend, options: PageRunnerOptions) => {
  const key = `${backend}|${JSON.stringify(options)}`;
  if (!runners.has(key)) runners.set(key, ortWebRunner({ ort, backend, ...options }));
  return runners.get(key)!;
};

const session = (id: number): OrtWebSession => {
  const s = sessions.get(id);
  if (!s) throw new Error(`no session ${id}`);
  return s;
};

const api = {
  async info(): Promise<{ crossOriginIsolated: boolean; cores: number; webgpu: string | null }> {
    const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<{ info?: { vendor: string; architecture: string } } | null> } }).gpu;
    const adapter = gpu ? await gpu.requestAdapter() : null;
    return {
      crossOriginIsolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
      cores: navigator.hardwareConcurrency,
      webgpu: adapter ? `${adapter.info?.vendor ?? '?'} ${adapter.info?.architecture ?? ''}`.trim() : null,
    };
  },
  async load(backend: OrtWebBackend, step: WireStep, options: PageRunnerOptions, load: { feedback?: Record<string, string>; store?: string } = {}): Promise<number> {
    const s = await runnerFor(backend, options).load(stepFromWire(step), load);
    sessions.set(nextId, s);
    return nextId++;
  },
  async run(id: number, feeds: Record<string, WireTensor>): Promise<Record<string, WireTensor>> {
    return mapValues(await session(id).run(mapValues(feeds, fromWire)), toWire);
  },
  async readHeld(id: number, input: string): Promise<WireTensor> {
    return toWire(await session(id).readHeld(input));
  },
  fallbackReport: (id: number): Promise<FallbackReport> => session(id).fallbackReport(),
  async release(id: number): Promise<void> {
    await session(id).release();
    sessions.delete(id);
  },
  threads: (): number => Number(ort.env.wasm.numThreads ?? 0),
};

export type PageApi = typeof api;
(globalThis as unknown as { conformance: PageApi }).conformance = api;
