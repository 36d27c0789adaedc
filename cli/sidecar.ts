/**
 * `tuneforge sidecar`: serve compiled steps on this machine's accelerator for a runner elsewhere (runners/sidecar.ts;
 * docs/sidecar.md). Loopback by default; any other address needs a token chosen by the operator, because the token
 * is then all that stands between the network and the GPU.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseBudget } from '../core/memory/fit.ts';
import { DEFAULT_LIMITS, SIDECAR_PROVIDERS, startSidecar, type RunningSidecar, type SidecarProvider } from '../runners/sidecar-server.ts';

export interface SidecarCommandOptions {
  /** `HOST:PORT` (`[::1]:7070` for IPv6); default 127.0.0.1:7070. */
  listen?: string;
  provider?: string;
  tokenFile?: string;
  /** e.g. "4GiB". */
  maxBody?: string;
  maxSessions?: number;
  /** e.g. "32GiB": fed-back outputs held by all sessions together. */
  maxHeld?: string;
  /** Seconds. */
  idleTimeout?: number;
  allowOrigin?: string[];
}

export const DEFAULT_LISTEN = '127.0.0.1:7070';

export function parseListen(listen: string): { hostname: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`--listen: expected HOST:PORT (e.g. 127.0.0.1:7070 or [::1]:7070), got '${listen}'`);
  return { hostname: (m[1] ?? m[2])!, port };
}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach. 0.0.0.0 and :: are every interface. */
export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * The token from `--token-file` (first line) or TUNEFORGE_SIDECAR_TOKEN. Without one, a loopback sidecar makes a
 * random token and prints it (as Jupyter does), so every request is still authenticated; any other address refuses
 * to start, since a token the operator did not choose would have to travel somehow.
 */
export function resolveSidecarToken(o: { tokenFile?: string; env?: string; loopback: boolean }): { token: string; generated: boolean } {
  let token = o.tokenFile !== undefined ? readFileSync(o.tokenFile, 'utf8').split('\n')[0]!.trim() : o.env?.trim();
  if (o.tokenFile !== undefined && !token) throw new Error(`--token-file ${o.tokenFile} is empty`);
  if (!token) {
    if (!o.loopback) throw new Error('refusing to listen beyond loopback without a token: pass --token-file FILE or set TUNEFORGE_SIDECAR_TOKEN (at least 16 characters)');
    return { token: randomBytes(24).toString('base64url'), generated: true };
  }
  if (token.length < 16) throw new Error('the sidecar token must be at least 16 characters');
  return { token, generated: false };
}

function sizeOption(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  try {
    return parseBudget(value);
  } catch {
    throw new Error(`--${flag}: cannot read '${value}'; write e.g. "4GiB" or "512MB"`);
  }
}

/** Starts the sidecar as the options say; returns once it listens (the caller waits for a signal to stop it). */
export async function startSidecarFromOptions(o: SidecarCommandOptions, env: Record<string, string | undefined> = process.env, print: (line: string) => void = console.log): Promise<RunningSidecar> {
  const { hostname, port } = parseListen(o.listen ?? DEFAULT_LISTEN);
  const provider = (o.provider ?? 'cpu') as SidecarProvider;
  if (!SIDECAR_PROVIDERS.includes(provider)) throw new Error(`--provider: one of ${SIDECAR_PROVIDERS.join(', ')}, got '${o.provider}'`);
  const { token, generated } = resolveSidecarToken({ tokenFile: o.tokenFile, env: env.TUNEFORGE_SIDECAR_TOKEN, loopback: isLoopback(hostname) });
  const server = await startSidecar({
    hostname, port, provider, token, maxSessions: o.maxSessions,
    maxBodyBytes: sizeOption('max-body', o.maxBody, DEFAULT_LIMITS.maxBodyBytes), maxHeldBytes: sizeOption('max-held', o.maxHeld, DEFAULT_LIMITS.maxHeldBytes),
    idleTimeoutMs: o.idleTimeout !== undefined ? o.idleTimeout * 1000 : undefined, allowOrigins: o.allowOrigin, log: (l) => console.error(l),
  });
  const l = server.handler.limits;
  print(`listening on ${server.url} (provider ${provider}; max body ${(l.maxBodyBytes / 2 ** 20).toFixed(0)} MiB, max sessions ${l.maxSessions}, max held ${(l.maxHeldBytes / 2 ** 30).toFixed(1)} GiB, idle timeout ${l.idleTimeoutMs / 1000} s)`);
  if (generated) print(`token: ${token}   (generated for this run; choose one with --token-file FILE or TUNEFORGE_SIDECAR_TOKEN)`);
  return server;
}

export async function sidecarCommand(o: SidecarCommandOptions): Promise<void> {
  const server = await startSidecarFromOptions(o);
  await new Promise<void>((resolve) => {
    const stop = () => void server.stop().then(resolve);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
