import { join } from 'node:path';
import { existsFollowing, readRef, repoCacheFolder, snapshotFolder } from './cache-layout.ts';
import { downloadSnapshot } from './download.ts';
import { HubError } from './errors.ts';
import { missingFromSnapshot } from './model-files.ts';
import { parseSource, resolveCacheDir, resolveEndpoint, resolveOffline, resolveToken } from './settings.ts';
import type { ResolveModelOptions } from './types.ts';

/**
 * Returns a local directory holding the model files.
 *
 * - A local folder is returned as-is (absolute) after checking it has `config.json`.
 * - A Hub repo id `owner/name` or `owner/name@revision` is downloaded (only missing files) into the Hugging Face
 *   cache layout shared with Python (`models--owner--name/{blobs,snapshots,refs}`) and the snapshot folder
 *   `snapshots/<commit>` is returned. Online, the revision is always re-resolved (one small API request) so a
 *   moved branch is picked up; cached files are not downloaded again.
 * - Offline (`offline: true` or `HF_HUB_OFFLINE=1`) only the cache is used: `refs/<revision>` → snapshot.
 *
 * @throws HubError with a `code` and an actionable message (repo not found, 401/403 → set HF_TOKEN, network
 *   failure → HF_HUB_OFFLINE=1, not cached while offline, ...).
 */
export async function resolveModel(source: string, opts: ResolveModelOptions = {}): Promise<string> {
  const parsed = parseSource(source, opts.revision);
  if (parsed.kind === 'local') {
    if (!(await existsFollowing(join(parsed.dir, 'config.json')))) {
      throw new HubError('local-invalid', `Local model folder ${parsed.dir} has no config.json.`);
    }
    return parsed.dir;
  }
  const { repo, revision } = parsed;
  const cacheDir = resolveCacheDir(opts.cacheDir);
  if (resolveOffline(opts.offline)) return resolveFromCache(repo, revision, cacheDir, opts.files);
  return downloadSnapshot({
    repo,
    revision,
    cacheDir,
    endpoint: resolveEndpoint(opts.endpoint),
    token: resolveToken(opts.token),
    files: opts.files,
    onProgress: opts.onProgress,
  });
}

async function resolveFromCache(repo: string, revision: string, cacheDir: string, files?: readonly string[]): Promise<string> {
  const where = repoCacheFolder(cacheDir, repo);
  const prefix = `Offline mode (HF_HUB_OFFLINE / offline: true): "${repo}" at revision "${revision}"`;
  const fix = 'Run once with network access to download it, or point cacheDir / HF_HUB_CACHE at a cache that has it.';
  const commit = await readRef(cacheDir, repo, revision);
  const snapshot = commit === undefined ? undefined : snapshotFolder(cacheDir, repo, commit);
  if (snapshot === undefined || !(await existsFollowing(snapshot))) {
    throw new HubError('not-cached', `${prefix} is not in the cache at ${where}. ${fix}`);
  }
  const missing = await missingFromSnapshot(snapshot, files);
  if (missing.length > 0) {
    throw new HubError('not-cached', `${prefix} is only partly cached at ${snapshot}; missing: ${missing.join(', ')}. ${fix}`);
  }
  return snapshot;
}
