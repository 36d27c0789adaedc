/**
 * The sidecar's server side: a fetch handler that loads compiled steps on onnxruntime-node with one execution
 * provider and runs them (wire format: runners/sidecar-protocol.ts; the command: cli/sidecar.ts).
 *
 * What a request can and cannot do: it is refused unless it carries the bearer token (compared in constant time); it
 * can send ONNX bytes and tensors, never a path (a step's files are written under names from a fixed list into a
 * folder the server creates, and onnxruntime refuses external data outside the model's folder) and never code
 * (session options, custom-op libraries and the provider are the server's). Bodies, sessions and idle time are
 * bounded.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostTensor } from '../core/ir/host.ts';
import { ortNodeRunner } from './ort-node.ts';
import { sidecar } from './sidecar.ts';
import { badFeedback, holdOutputs, holds } from './holding.ts';
import { HttpError, SessionTable } from './sidecar-sessions.ts';
import { EXECUTION_PROVIDERS, probeProvider, type SidecarProvider } from './sidecar-providers.ts';
import type { CompiledStep, Runner, RunnerSession } from './types.ts';
import {
  BodyTooLargeError, ChunkReader, LOAD_CONTENT_TYPE, ProtocolError, STREAM_ABOVE_BYTES, TENSOR_CONTENT_TYPE, encodeTensors, readLoadHeader, readTensors, streamOf,
  type SidecarErrorBody,
} from './sidecar-protocol.ts';

export { SIDECAR_PROVIDERS, probeProvider, type SidecarProvider } from './sidecar-providers.ts';

export interface SidecarLimits {
  /** Largest request body (a load frame: model + weights; a run frame: the feeds). Default 4 GiB. */
  maxBodyBytes: number;
  /** Sessions held at once (loads in progress count). Default 128: a checkpointed step holds one per stage. */
  maxSessions: number;
  /** A session not run for this long is released (a client that died without releasing). Default 1 hour. */
  idleTimeoutMs: number;
  /** Fed-back outputs held by all sessions together (a run that would hold more is refused). Default 32 GiB. */
  maxHeldBytes: number;
}

export const DEFAULT_LIMITS: SidecarLimits = { maxBodyBytes: 4 * 2 ** 30, maxSessions: 128, idleTimeoutMs: 3_600_000, maxHeldBytes: 32 * 2 ** 30 };

export interface SidecarServerOptions extends Partial<SidecarLimits> {
  provider: SidecarProvider;
  /** The bearer token every request must carry (at least 16 characters). */
  token: string;
  /** Origins (`https://app.example`) whose pages may call the sidecar from a browser (CORS). Default none. */
  allowOrigins?: readonly string[];
  log?: (line: string) => void;
}

export interface SidecarInfo {
  provider: SidecarProvider;
  sessions: number;
  /** Bytes of fed-back outputs the sessions hold. */
  heldBytes: number;
  limits: SidecarLimits;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

/** The message of the runtime's own error under ortNodeRunner's wrapping (the client adds its own context). */
const rootMessage = (e: unknown): string => {
  const cause = (e as { cause?: unknown }).cause;
  return cause instanceof Error ? cause.message : (e as Error).message ?? String(e);
};

/** Tensors as a tensor frame response. */
function tensorResponse(tensors: Record<string, HostTensor>): Response {
  const frame = encodeTensors(tensors);
  // A Blob copies its parts into one buffer: fine for small outputs, a second copy of every gradient for large ones.
  const body = frame.bytes > STREAM_ABOVE_BYTES ? streamOf(frame.parts) : new Blob(frame.parts);
  return new Response(body, { status: 200, headers: { 'content-type': TENSOR_CONTENT_TYPE } });
}

export class SidecarHandler {
  readonly limits: SidecarLimits;
  private readonly sessions: SessionTable;
  private readonly tokenDigest: Buffer;
  private readonly runner: Runner;
  private readonly log: (line: string) => void;
  /** Which session a loaded step is (the placement report names it). */
  private readonly stepIds = new WeakMap<CompiledStep, string>();

  constructor(private readonly o: SidecarServerOptions) {
    if (o.token.length < 16) throw new Error('the sidecar token must be at least 16 characters');
    this.limits = {
      maxBodyBytes: o.maxBodyBytes ?? DEFAULT_LIMITS.maxBodyBytes, maxSessions: o.maxSessions ?? DEFAULT_LIMITS.maxSessions,
      idleTimeoutMs: o.idleTimeoutMs ?? DEFAULT_LIMITS.idleTimeoutMs, maxHeldBytes: o.maxHeldBytes ?? DEFAULT_LIMITS.maxHeldBytes,
    };
    this.tokenDigest = digest(o.token);
    this.log = o.log ?? (() => {});
    // On a GPU provider, each session's first run says which nodes onnxruntime put on the CPU instead.
    this.runner = ortNodeRunner({
      executionProviders: EXECUTION_PROVIDERS[o.provider],
      onPlacement: (p, step) => this.log(`sidecar: session ${this.stepIds.get(step) ?? '?'}, first run: ${p.summary}`),
    });
    this.sessions = new SessionTable(this.limits, this.log);
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  readonly fetch = async (req: Request): Promise<Response> => {
    const cors = this.corsHeaders(req);
    try {
      if (req.method === 'OPTIONS') {
        if (!cors) throw new HttpError(403, 'origin_not_allowed', 'this origin may not call the sidecar (see --allow-origin)');
        return new Response(null, { status: 204, headers: { ...cors, 'access-control-allow-methods': 'GET, POST, DELETE', 'access-control-allow-headers': 'authorization, content-type', 'access-control-max-age': '600' } });
      }
      this.authenticate(req);
      const response = await this.route(req);
      if (cors) for (const [k, v] of Object.entries(cors)) response.headers.set(k, v);
      return response;
    } catch (e) {
      if (req.body && !req.bodyUsed) void req.body.cancel().catch(() => {});
      const err = e instanceof HttpError ? e
        : e instanceof BodyTooLargeError ? new HttpError(413, 'body_too_large', `the request body exceeds the sidecar's limit of ${this.limits.maxBodyBytes} bytes (--max-body)`)
          : e instanceof ProtocolError ? new HttpError(400, 'malformed_frame', e.message)
            : new HttpError(500, 'internal', (e as Error).message ?? String(e));
      if (err.status >= 500) this.log(`sidecar: ${req.method} ${new URL(req.url).pathname}: ${err.message}`);
      return json(err.status, { error: { code: err.code, message: err.message } } satisfies SidecarErrorBody, cors ?? {});
    }
  };

  private corsHeaders(req: Request): Record<string, string> | undefined {
    const origin = req.headers.get('origin');
    if (!origin || !this.o.allowOrigins?.includes(origin)) return undefined;
    return { 'access-control-allow-origin': origin, vary: 'origin' };
  }

  private authenticate(req: Request): void {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.get('authorization') ?? '');
    if (!m) throw new HttpError(401, 'missing_token', 'missing token: send "Authorization: Bearer <token>" (the token given to tuneforge sidecar)');
    // Both sides hashed to 32 bytes first: timingSafeEqual needs equal lengths, and the length is not revealed either.
    if (!timingSafeEqual(digest(m[1]!), this.tokenDigest)) throw new HttpError(401, 'invalid_token', 'incorrect token');
  }

  private async route(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    if (path === '/v1/info' && req.method === 'GET') {
      return json(200, { provider: this.o.provider, sessions: this.sessions.size, heldBytes: this.sessions.heldBytes, limits: this.limits } satisfies SidecarInfo);
    }
    if (path === '/v1/sessions' && req.method === 'POST') return this.load(req);
    const m = /^\/v1\/sessions\/([^/]+)(\/run)?$/.exec(path);
    if (m && m[2] && req.method === 'POST') return this.run(m[1]!, req);
    if (m && !m[2] && req.method === 'DELETE') return this.release(m[1]!);
    const h = /^\/v1\/sessions\/([^/]+)\/held\/([^/]+)$/.exec(path);
    if (h && req.method === 'GET') return this.readHeld(h[1]!, h[2]!);
    throw new HttpError(404, 'not_found', `no route ${req.method} ${path}`);
  }

  private body(req: Request, contentType: string): ChunkReader {
    const declared = Number(req.headers.get('content-length') ?? NaN);
    if (declared > this.limits.maxBodyBytes) throw new BodyTooLargeError(this.limits.maxBodyBytes);
    const type = req.headers.get('content-type') ?? '';
    if (!type.startsWith(contentType)) throw new HttpError(415, 'wrong_content_type', `expected content-type ${contentType}, got '${type}'`);
    if (!req.body) throw new ProtocolError('the request has no body');
    return new ChunkReader(req.body, this.limits.maxBodyBytes);
  }

  private async load(req: Request): Promise<Response> {
    const done = this.sessions.reserve();
    // The step's files go to a folder of the server's own choosing; it is removed once the session holds the weights.
    const dir = await mkdtemp(join(tmpdir(), 'tuneforge-sidecar-'));
    try {
      const reader = this.body(req, LOAD_CONTENT_TYPE);
      const header = await readLoadHeader(reader);
      const feedback = Object.fromEntries(header.feedback ?? []);
      const bad = badFeedback(header, feedback, header.store !== undefined);
      if (bad.length) throw new HttpError(400, 'bad_feedback', `feedback pairs that do not fit the step: ${bad.join(', ')}`);
      for (const part of header.parts) {
        const file = await open(join(dir, part.name), 'w');
        try {
          await reader.pipe(part.bytes, async (piece) => { await file.write(piece); }, `part '${part.name}'`);
        } finally {
          await file.close();
        }
      }
      await reader.end();
      let session: RunnerSession, step: CompiledStep;
      try {
        step = { model: { path: join(dir, 'model.onnx') }, inputs: header.inputs, outputs: header.outputs, origins: new Map() };
        session = await this.runner.load(step);
      } catch (e) {
        throw new HttpError(422, 'load_failed', rootMessage(e));
      }
      // Fed-back outputs stay here between runs (in this process's memory, next to the session), in its store if any.
      const store = header.store ? this.sessions.store(header.store) : undefined;
      if (header.feedback?.length || store) session = holdOutputs(session, header, feedback, 'sidecar', (d) => this.sessions.accountHeld(d), store, header.inPlace);
      const id = this.sessions.add(session, header.store);
      this.stepIds.set(step, id);
      const bytes = header.parts.reduce((s, p) => s + p.bytes, 0);
      this.log(`sidecar: session ${id} loaded (${(bytes / 2 ** 20).toFixed(1)} MiB, ${this.sessions.size} held)`);
      return json(201, { session: id });
    } finally {
      done();
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async run(id: string, req: Request): Promise<Response> {
    this.sessions.check(id);
    const feeds = await readTensors(this.body(req, TENSOR_CONTENT_TYPE));
    const outputs = await this.sessions.use(id, async (session) => {
      try {
        return await session.run(feeds);
      } catch (e) {
        if (e instanceof HttpError) throw e; // a limit of this server's (held_limit)
        throw new HttpError(422, 'run_failed', rootMessage(e));
      }
    });
    return tensorResponse(outputs);
  }

  /** The tensor a session holds for a fed-back input; the name is only a key of that session's table. */
  private async readHeld(id: string, encoded: string): Promise<Response> {
    let input: string;
    try {
      input = decodeURIComponent(encoded);
    } catch {
      throw new HttpError(400, 'bad_name', 'the input name is not valid percent-encoding');
    }
    // Queued after the run in flight, which replaces what is held.
    const t = await this.sessions.use(id, async (session) => {
      if (!holds(session)) throw new HttpError(404, 'nothing_held', `session '${id}' was loaded without feedback: it holds nothing`);
      try {
        return await session.readHeld(input);
      } catch (e) {
        throw new HttpError(404, 'nothing_held', (e as Error).message);
      }
    });
    return tensorResponse({ [input]: t });
  }

  private async release(id: string): Promise<Response> {
    await this.sessions.release(id);
    return new Response(null, { status: 204 });
  }

  /** Releases every session and stops the idle sweep. */
  async close(): Promise<void> {
    await this.sessions.close();
  }
}

export interface RunningSidecar {
  readonly url: string;
  readonly handler: SidecarHandler;
  stop(): Promise<void>;
}

/** Starts the sidecar on Bun.serve (port 0: any free port; the chosen one is in `url`). */
export async function startSidecar(o: SidecarServerOptions & { hostname: string; port: number }): Promise<RunningSidecar> {
  await probeProvider(o.provider);
  const handler = new SidecarHandler(o);
  // idleTimeout 0: a GPU step or a large upload may be silent for longer than Bun's default 10 s.
  const server = Bun.serve({ hostname: o.hostname, port: o.port, fetch: handler.fetch, idleTimeout: 0, maxRequestBodySize: handler.limits.maxBodyBytes + 2 ** 16 });
  const host = o.hostname.includes(':') ? `[${o.hostname}]` : o.hostname;
  return {
    url: `http://${host}:${server.port}`,
    handler,
    async stop() {
      await server.stop(true);
      await handler.close();
    },
  };
}

/**
 * A sidecar in this process on a free loopback port, started on first use and stopped by `close()`: the runner
 * conformance suite's entry (runners/conformance.ts), so the sidecar is held to the same cases as every runner.
 */
export function loopbackSidecar(provider: SidecarProvider = 'cpu') {
  const token = `${randomUUID()}${randomUUID()}`;
  let started: Promise<RunningSidecar> | undefined;
  const start = () => (started ??= startSidecar({ hostname: '127.0.0.1', port: 0, provider, token }));
  return {
    available: async (): Promise<string | true> => start().then(() => true as const, (e: unknown) => (e as Error).message.split('\n')[0]!),
    make: async ({ feedback }: { feedback?: Readonly<Record<string, string>> } = {}): Promise<Runner> =>
      sidecar((await start()).url, { token, ...(feedback ? { feedback } : {}) }),
    close: async (): Promise<void> => {
      const s = started;
      started = undefined;
      if (s) await (await s).stop();
    },
  };
}
