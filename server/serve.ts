/**
 * `tuneforge serve`: the service on Bun.serve (or Deno.serve under Deno), with the worker loop. SIGINT / SIGTERM stop
 * it cleanly: no new claims, running jobs are checkpointed and queued again, so a restart (or another server sharing
 * the Postgres store) resumes them.
 */
import { readFileSync } from 'node:fs';
import { createApp } from './app.ts';
import { releaseGenerators } from './generation/engine.ts';
import { serverConfigSchema, type ServerConfigInput } from './config.ts';
import { startWorkerLoop, type WorkerLoop } from './queue/worker-loop.ts';
import { createService, type Service } from './service.ts';

export interface ServeOptions {
  port?: number;
  home?: string;
  allowModel?: string[];
  allowPlugin?: string[];
  offline?: boolean;
  /** An optional JSON server config file; the flags above win over it. */
  config?: string;
  store?: string;
  concurrency?: number;
}

export interface RunningServer {
  url: string;
  svc: Service;
  loop: WorkerLoop;
  stop(): Promise<void>;
}

declare const Deno: { serve(o: { port: number; hostname: string; onListen?: (a: { port: number }) => void }, h: (r: Request) => Response | Promise<Response>): { shutdown(): Promise<void>; addr: { port: number } } } | undefined;

export function serverConfigFrom(o: ServeOptions): ServerConfigInput {
  let file: Partial<ServerConfigInput> = {};
  if (o.config) {
    try {
      file = JSON.parse(readFileSync(o.config, 'utf8')) as Partial<ServerConfigInput>;
    } catch (e) {
      throw new Error(`server config ${o.config}: ${(e as Error).message}`);
    }
  }
  const merged: ServerConfigInput = {
    ...file,
    home: o.home ?? file.home ?? './tuneforge-home',
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.store !== undefined ? { store: o.store } : {}),
    ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
    allowModels: [...(file.allowModels ?? []), ...(o.allowModel ?? [])],
    allowPlugins: [...(file.allowPlugins ?? []), ...(o.allowPlugin ?? [])],
    offline: o.offline ?? file.offline ?? false,
  };
  const r = serverConfigSchema.safeParse(merged);
  if (!r.success) throw new Error(`server config: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return merged;
}

export async function startServer(input: ServerConfigInput, log: (line: string) => void = (l) => console.error(l)): Promise<RunningServer> {
  const svc = await createService(input, log);
  const app = createApp(svc);
  const { port, host } = svc.config;
  let stopHttp: () => Promise<void>;
  let boundPort: number;
  if (typeof Deno !== 'undefined') {
    const s = Deno.serve({ port, hostname: host, onListen: () => {} }, app.fetch);
    boundPort = s.addr.port;
    stopHttp = () => s.shutdown();
  } else {
    const s = Bun.serve({ port, hostname: host, fetch: app.fetch, idleTimeout: 0, maxRequestBodySize: svc.config.limits.uploadBytes + 2 ** 20 });
    boundPort = s.port!;
    stopHttp = async () => void (await s.stop(true));
  }
  const loop = await startWorkerLoop(svc);
  const url = `http://${host}:${boundPort}`;
  if (svc.keys.length === 0) log('warning: no API keys configured (TUNEFORGE_API_KEYS): every /v1 request will be refused');
  log(`tuneforge serve: ${url} (store ${svc.store.kind}, home ${svc.paths.home}, ${svc.config.concurrency} concurrent job${svc.config.concurrency === 1 ? '' : 's'}, worker ${loop.workerId})`);
  return {
    url, svc, loop,
    async stop() {
      await loop.stop();
      await stopHttp();
      await releaseGenerators(svc);
      await svc.close();
    },
  };
}
