import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { statSync } from 'node:fs';
import { getHFHubCachePath, HUB_URL } from '@huggingface/hub';
import { HubError } from './errors.ts';

/** Where a model comes from: a folder on disk, or a Hub repo at a revision. */
export type ModelSource =
  | { readonly kind: 'local'; readonly dir: string }
  | { readonly kind: 'hub'; readonly repo: string; readonly revision: string };

/** The default branch, as on the Hub. */
export const DEFAULT_REVISION = 'main';

const REPO_PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p;
}

/**
 * Splits a model source into a local folder or a Hub repo id + revision.
 * An existing directory always wins (like transformers' `from_pretrained`); otherwise the source must be
 * `owner/name` or `owner/name@revision`. `revision` (from options) must agree with an `@revision` suffix.
 */
export function parseSource(source: string, revision?: string): ModelSource {
  const expanded = expandHome(source);
  if (isDirectory(expanded)) return { kind: 'local', dir: resolve(expanded) };
  const looksLikePath = /^[.~/\\]/.test(source) || source.includes('\\') || /^[A-Za-z]:/.test(source);
  const at = source.indexOf('@');
  const id = at < 0 ? source : source.slice(0, at);
  const suffix = at < 0 ? undefined : source.slice(at + 1);
  const parts = id.split('/');
  const isRepoId = !looksLikePath && parts.length === 2 && parts.every((p) => REPO_PART.test(p) && !p.includes('..'));
  if (!isRepoId) {
    throw new HubError(
      'invalid-source',
      `"${source}" is neither an existing local folder nor a Hugging Face repo id of the form owner/name[@revision].`,
    );
  }
  if (suffix !== undefined && suffix.length === 0) {
    throw new HubError('invalid-source', `"${source}": empty revision after "@".`);
  }
  if (suffix !== undefined && revision !== undefined && suffix !== revision) {
    throw new HubError('invalid-source', `"${source}" pins revision "${suffix}" but the revision option says "${revision}".`);
  }
  return { kind: 'hub', repo: id, revision: suffix ?? revision ?? DEFAULT_REVISION };
}

/** Cache root: explicit option, else HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub (as in Python). */
export function resolveCacheDir(cacheDir?: string): string {
  // getHFHubCachePath reads HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME, XDG_CACHE_HOME at call time.
  return resolve(expandHome(cacheDir ?? getHFHubCachePath()));
}

/** Endpoint: explicit option, else HF_ENDPOINT, else https://huggingface.co. No trailing slash. */
export function resolveEndpoint(endpoint?: string): string {
  const raw = endpoint ?? nonEmpty(process.env['HF_ENDPOINT']) ?? HUB_URL;
  return raw.replace(/\/+$/, '');
}

/** Token: explicit option, else HF_TOKEN. */
export function resolveToken(token?: string): string | undefined {
  return nonEmpty(token) ?? nonEmpty(process.env['HF_TOKEN']);
}

/** Offline: explicit option, else HF_HUB_OFFLINE in {1, ON, YES, TRUE} (case-insensitive), as in Python. */
export function resolveOffline(offline?: boolean): boolean {
  if (offline !== undefined) return offline;
  const v = process.env['HF_HUB_OFFLINE']?.trim().toUpperCase();
  return v === '1' || v === 'ON' || v === 'YES' || v === 'TRUE';
}

function nonEmpty(s: string | undefined): string | undefined {
  return s !== undefined && s.trim() !== '' ? s.trim() : undefined;
}
