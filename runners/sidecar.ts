/**
 * A runner whose sessions live in a sidecar process (`tuneforge sidecar`, usually on a GPU machine), so the process
 * that orchestrates training can stay small and run anywhere fetch does: Bun, Deno, a browser.
 *
 * ```ts
 * const runner = sidecar('http://gpu-box:7070', { token: process.env.TUNEFORGE_SIDECAR_TOKEN! });
 * await train({ config, plugins, runner });      // or compile(graph, { runner })
 * ```
 *
 * `load` uploads the compiled step once (the ONNX model, whose initializers are the resident weights, and its
 * external data file when it has one) and gets a session id; `run` sends only the feeds and receives the outputs.
 * The runner sets `residentWeights`, so a trainer compiles the frozen weights into each step and a run's feeds are
 * the batch and the trainable tensors only;
 * `release` frees the session there. Bodies are binary frames (runners/sidecar-protocol.ts), never JSON-encoded
 * tensors. A lost connection or a timeout fails the step with a `SidecarError` that names the sidecar and what to do;
 * a trainer then resumes from its latest checkpoint once the sidecar is back.
 */
import { loadFeedback, type HoldingSession } from './holding.ts';
import { explainRuntimeError, type CompiledStep, type LoadOptions, type Runner } from './types.ts';
import type { HostTensor } from '../core/ir/host.ts';
import type { SidecarInfo } from './sidecar-server.ts';
import {
  ChunkReader, LOAD_CONTENT_TYPE, STORE_ID, STREAM_ABOVE_BYTES, streamOf, type FramePart, PART_NAMES, ProtocolError, TENSOR_CONTENT_TYPE, encodeLoadPrefix, encodeTensors, readTensors,
  type LoadHeader, type SidecarErrorBody,
} from './sidecar-protocol.ts';

export interface SidecarOptions {
  /** The bearer token the sidecar was started with (`--token-file` or TUNEFORGE_SIDECAR_TOKEN on its side). */
  token: string;
  /** A run or a release must be answered within this many milliseconds (default 5 minutes). */
  timeoutMs?: number;
  /** A load (uploading the model and its weights, building the session) within this many (default 30 minutes). */
  loadTimeoutMs?: number;
  /**
   * `{ output: input }` pairs held on the sidecar between runs, as onnxruntime-web's `feedback`: not returned by
   * `run`, fed to their inputs when a run leaves them out, read back with `readHeld`. A step's training state fed
   * back this way (weights and moments of a fused update) crosses the network once, not every step.
   */
  feedback?: Readonly<Record<string, string>>;
}

/** What the runner has moved, for benchmarks and logs. */
export interface SidecarStats {
  loads: number;
  runs: number;
  bytesSent: number;
  bytesReceived: number;
}

export type SidecarErrorCode = 'unreachable' | 'timeout' | 'refused' | 'protocol';

/** A step that failed because of the sidecar (not because of the graph): the message says which sidecar and what to do. */
export class SidecarError extends Error {
  override name = 'SidecarError';
  constructor(readonly code: SidecarErrorCode, readonly url: string, message: string, readonly status?: number, options?: ErrorOptions) {
    super(message, options);
  }
}

export interface SidecarRunner extends Runner {
  readonly url: string;
  load(step: CompiledStep, options?: LoadOptions): Promise<HoldingSession>;
  readonly stats: Readonly<SidecarStats>;
  /** The sidecar's provider, session count and limits. */
  info(): Promise<SidecarInfo>;
}

const RESUME_HINT = 'a training run resumes from its latest checkpoint when started again (tuneforge train)';

/** The step as upload parts: bytes as they are, or the files compile() wrote (model + `weights.bin`). */
async function stepParts(step: CompiledStep): Promise<{ blobs: FramePart[]; parts: LoadHeader['parts']; files: boolean }> {
  if ('bytes' in step.model) return { blobs: [step.model.bytes as Uint8Array<ArrayBuffer>], parts: [{ name: PART_NAMES[0], bytes: step.model.bytes.length }], files: false };
  // A path exists only where compile() wrote external data, so node:fs exists too (Bun, Node, Deno); imported here,
  // not at the top, so browsers can load this module. The files are read lazily as the body is sent.
  const fs = await import('node:fs');
  const path = await import('node:path');
  const model = await fs.openAsBlob(step.model.path);
  const weightsPath = path.join(path.dirname(step.model.path), PART_NAMES[1]);
  const blobs: FramePart[] = [model];
  const parts: LoadHeader['parts'] = [{ name: PART_NAMES[0], bytes: model.size }];
  if (fs.existsSync(weightsPath)) {
    const weights = await fs.openAsBlob(weightsPath);
    blobs.push(weights);
    parts.push({ name: PART_NAMES[1], bytes: weights.size });
  }
  return { blobs, parts, files: true };
}

/**
 * A runner that executes compiled steps on the sidecar at `url` (`http://host:port`, as `tuneforge sidecar` prints).
 */
/**
 * Bun, Node and Deno stream a request body over HTTP/1.1 (`duplex: 'half'`); browsers stream uploads only over HTTP/2,
 * so there a frame is one Blob.
 */
const STREAMS_UPLOADS = 'Bun' in globalThis || 'Deno' in globalThis || typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';

/** A run's feeds as a request body: a large frame streamed from its tensors, not copied into one Blob first. */
function runBody(frame: { parts: FramePart[]; bytes: number }): Blob | ReadableStream<Uint8Array> {
  return STREAMS_UPLOADS && frame.bytes > STREAM_ABOVE_BYTES ? streamOf(frame.parts) : new Blob(frame.parts);
}

export function sidecar(url: string, options: SidecarOptions): SidecarRunner {
  const base = url.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 300_000;
  const loadTimeoutMs = Math.max(options.loadTimeoutMs ?? 1_800_000, timeoutMs);
  const stats: SidecarStats = { loads: 0, runs: 0, bytesSent: 0, bytesReceived: 0 };

  /** One request; transport failures and refusals become SidecarErrors that say what was being done. */
  async function call(method: string, path: string, what: string, limitMs: number, body?: { data: Blob | ReadableStream<Uint8Array>; size: number }, contentType?: string): Promise<{ res: Response; signal: AbortSignal }> {
    const signal = AbortSignal.timeout(limitMs); // also bounds the reading of the response's body
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method, body: body?.data, signal,
        // A stream body needs half duplex (the answer comes after the whole upload); Bun, Node and Deno take it.
        ...(body?.data instanceof ReadableStream ? { duplex: 'half' } : {}),
        headers: { authorization: `Bearer ${options.token}`, ...(contentType ? { 'content-type': contentType } : {}) },
      });
    } catch (e) {
      throw transportError(e, signal, what, limitMs);
    }
    if (body) stats.bytesSent += body.size;
    if (res.ok) return { res, signal };
    let detail = `HTTP ${res.status}`;
    let code = '';
    try {
      const err = ((await res.json()) as SidecarErrorBody).error;
      detail = err.message;
      code = err.code;
    } catch { /* not our JSON: keep the status */ }
    throw new SidecarError('refused', base, `the sidecar at ${base} refused to ${what}: ${detail} (HTTP ${res.status}${code ? `, ${code}` : ''})`, res.status);
  }

  function transportError(e: unknown, signal: AbortSignal, what: string, limitMs: number): SidecarError {
    if (signal.aborted) {
      return new SidecarError('timeout', base, `the sidecar at ${base} did not ${what} within ${limitMs} ms: check that it is not stuck or overloaded (its log), or raise timeoutMs; ${RESUME_HINT}`, undefined, { cause: e });
    }
    const reason = (e as Error)?.message ?? String(e);
    return new SidecarError('unreachable', base, `lost the connection to the sidecar at ${base} while trying to ${what} (${reason}): check that \`tuneforge sidecar\` is still running there and reachable, restart it if not; ${RESUME_HINT}`, undefined, { cause: e });
  }

  /** Reads a tensor frame from a response body; a body cut short is a lost connection, not a malformed frame. */
  async function readOutputs(res: Response, what: string, limitMs: number, signal: AbortSignal): Promise<Record<string, HostTensor>> {
    if (!res.body || !(res.headers.get('content-type') ?? '').startsWith(TENSOR_CONTENT_TYPE)) {
      throw new SidecarError('protocol', base, `the sidecar at ${base} answered ${what} with '${res.headers.get('content-type')}', not a tensor frame: is ${base} a tuneforge sidecar?`);
    }
    const reader = new ChunkReader(res.body);
    try {
      const out = await readTensors(reader);
      stats.bytesReceived += reader.total;
      return out;
    } catch (e) {
      reader.cancel();
      if (e instanceof ProtocolError) throw new SidecarError('protocol', base, `the sidecar at ${base} sent a malformed frame while trying to ${what}: ${e.message} (are both sides the same tuneforge version?)`, undefined, { cause: e });
      throw transportError(e, signal, what, limitMs);
    }
  }

  return {
    name: `sidecar ${base}`,
    url: base,
    // Frozen weights travel once, inside the model of each session, instead of with every run's feeds.
    residentWeights: true,
    // Fed-back outputs stay on the sidecar (held outputs, runners/holding.ts), shared by a store's sessions.
    holdsOutputs: true,
    sharesStores: true,
    stats,
    async info() {
      const { res } = await call('GET', '/v1/info', 'report its status', timeoutMs);
      return (await res.json()) as SidecarInfo;
    },
    async load(step: CompiledStep, loadOptions: LoadOptions = {}): Promise<HoldingSession> {
      const store = loadOptions.store;
      if (store !== undefined && !STORE_ID.test(store)) throw new Error(`sidecar: store id '${store}' is not 1 to 128 letters, digits and . _ : -`);
      const pairs = Object.entries(loadFeedback(step, 'sidecar', store !== undefined, options.feedback, loadOptions.feedback));
      const { blobs, parts, files } = await stepParts(step);
      const head = encodeLoadPrefix({ inputs: [...step.inputs], outputs: [...step.outputs], parts, ...(pairs.length ? { feedback: pairs } : {}), ...(store ? { store } : {}), ...(loadOptions.inPlace?.length ? { inPlace: [...loadOptions.inPlace] } : {}) }) as Uint8Array<ArrayBuffer>;
      const frame = [head, ...blobs];
      const body = { data: files ? streamOf(frame) : new Blob(frame), size: head.length + parts.reduce((n, p) => n + p.bytes, 0) };
      const { res } = await call('POST', '/v1/sessions', 'load a compiled step', loadTimeoutMs, body, LOAD_CONTENT_TYPE).catch((e: unknown) => {
        // The graph itself was refused by onnxruntime there: name the IR equations behind its nodes, as in-process.
        if (e instanceof SidecarError && e.status === 422) throw explainRuntimeError(new Error(e.message), step, 'load the compiled graph');
        throw e;
      });
      const { session: id } = (await res.json()) as { session: string };
      stats.loads++;
      let released = false;
      return {
        async run(feeds) {
          if (released) throw new Error(`sidecar session ${id} at ${base} was released; compile the step again`);
          const frame = encodeTensors(feeds);
          const what = `run a step (session ${id})`;
          let reply: { res: Response; signal: AbortSignal };
          try {
            reply = await call('POST', `/v1/sessions/${id}/run`, what, timeoutMs, { data: runBody(frame), size: frame.bytes }, TENSOR_CONTENT_TYPE);
          } catch (e) {
            if (e instanceof SidecarError && e.status === 422) throw explainRuntimeError(new Error(e.message), step, 'run the compiled graph');
            throw e;
          }
          stats.runs++;
          return readOutputs(reply.res, what, timeoutMs, reply.signal);
        },
        async readHeld(input) {
          if (released) throw new Error(`sidecar session ${id} at ${base} was released; its held tensors with it`);
          if (!store && !pairs.some(([, i]) => i === input)) throw new Error(`sidecar: nothing is held for input '${input}' (held: ${pairs.map(([, i]) => i).join(', ') || 'none'})`);
          const what = `read the held '${input}' (session ${id})`;
          const reply = await call('GET', `/v1/sessions/${id}/held/${encodeURIComponent(input)}`, what, timeoutMs);
          const t = (await readOutputs(reply.res, what, timeoutMs, reply.signal))[input];
          if (!t) throw new SidecarError('protocol', base, `the sidecar at ${base} answered ${what} without it`);
          return t;
        },
        async release() {
          if (released) return;
          released = true;
          await call('DELETE', `/v1/sessions/${id}`, `release session ${id}`, timeoutMs);
        },
      };
    },
  };
}
