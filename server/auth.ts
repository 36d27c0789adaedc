/**
 * Bearer-token API keys on every route but the health check and the dashboard's static page. Keys are compared in
 * constant time (both sides hashed to equal length first, then `timingSafeEqual`), so response times reveal nothing
 * about a key's prefix.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors.ts';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Keys from the config, TUNEFORGE_API_KEYS (comma-separated) and a keys file (one per line, # comments). */
export function loadApiKeys(configured: readonly string[], file?: string, env = process.env.TUNEFORGE_API_KEYS): string[] {
  const fromFile = file ? readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')) : [];
  const keys = [...configured, ...(env ?? '').split(',').map((k) => k.trim()).filter(Boolean), ...fromFile];
  const short = keys.filter((k) => k.length < 16);
  if (short.length) throw new Error(`API keys must be at least 16 characters (${short.length} shorter one${short.length > 1 ? 's' : ''} given)`);
  return keys;
}

export function keyMatches(keys: readonly Buffer[], presented: string): boolean {
  const d = digest(presented);
  let ok = false;
  for (const k of keys) ok = timingSafeEqual(k, d) || ok; // every key is compared: no early exit
  return ok;
}

export function requireApiKey(keys: readonly string[]): MiddlewareHandler {
  const digests = keys.map(digest);
  return async (c, next) => {
    if (digests.length === 0) throw new ApiError(401, 'this server has no API keys configured: set TUNEFORGE_API_KEYS (comma-separated) or apiKeysFile', null, 'no_api_keys');
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new ApiError(401, 'missing API key: send "Authorization: Bearer <key>"', null, 'missing_api_key');
    if (!keyMatches(digests, m[1]!)) throw new ApiError(401, 'incorrect API key provided', null, 'invalid_api_key');
    await next();
  };
}
