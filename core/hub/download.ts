/**
 * Online resolution: revision → commit, then the model files into the shared cache.
 *
 * We use `@huggingface/hub` for the protocol (modelInfo, listFiles, downloadFileToCacheDir) but drive it so the
 * result is the exact layout Python's huggingface_hub writes. The library alone does not get there:
 *  - `downloadFileToCacheDir` with a branch name puts each file under `snapshots/<last commit that touched the
 *    file>` (paths-info `lastCommit`), not under the commit the branch points to, and never writes `refs/<branch>`;
 *  - `snapshotDownload` resolves the commit and writes the ref, but always downloads every file of the repo.
 * So we resolve the commit ourselves (modelInfo `sha`), write `refs/<revision>`, and call
 * `downloadFileToCacheDir` with the commit hash as revision for just the files we need — with a commit hash the
 * library uses `snapshots/<commit>/<file>` → `../../blobs/<etag>` (sha256 for LFS, git blob id otherwise), as Python.
 */
import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import { downloadFileToCacheDir, listFiles, modelInfo } from '@huggingface/hub';
import { existsFollowing, isCommitHash, snapshotFolder, writeRef } from './cache-layout.ts';
import { HubError, toHubError } from './errors.ts';
import type { ErrorContext } from './errors.ts';
import { createHubFetch } from './hub-fetch.ts';
import type { FetchState } from './hub-fetch.ts';
import { planDownload, readShardNames } from './model-files.ts';
import type { DownloadProgress } from './types.ts';

/** Inputs of one online resolution (all defaults already applied). */
export interface OnlineRequest {
  readonly repo: string;
  readonly revision: string;
  readonly cacheDir: string;
  readonly endpoint: string;
  readonly token: string | undefined;
  readonly files?: readonly string[] | undefined;
  readonly onProgress?: ((e: DownloadProgress) => void) | undefined;
}

const PARALLEL_DOWNLOADS = 4;

async function mapPool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Downloads the requested files of `repo@revision` into the cache; returns the snapshot folder. */
export async function downloadSnapshot(req: OnlineRequest): Promise<string> {
  const { repo, revision, cacheDir, endpoint, token } = req;
  const newState = (): FetchState => ({ endpoint, token });
  const context = (state: FetchState, file?: string): ErrorContext => ({
    repo, revision, endpoint, cacheDir, file, lastFailure: state.lastFailure,
  });

  const infoState = newState();
  let commit: string;
  let listing: readonly string[] | undefined;
  try {
    const info = await modelInfo({
      name: repo,
      revision,
      hubUrl: endpoint,
      additionalFields: ['sha', 'filePaths'],
      fetch: createHubFetch(infoState),
    });
    commit = info.sha;
    listing = info.filePaths;
    if (listing === undefined) {
      // Servers that do not expand `siblings`: fall back to the tree API.
      const paths: string[] = [];
      for await (const e of listFiles({ repo, revision: commit, recursive: true, hubUrl: endpoint, fetch: createHubFetch(infoState) })) {
        if (e.type === 'file') paths.push(e.path);
      }
      listing = paths;
    }
  } catch (e) {
    throw toHubError(e, context(infoState));
  }
  if (typeof commit !== 'string' || !isCommitHash(commit)) {
    throw new HubError('http', `${endpoint} returned no commit hash for "${repo}" at revision "${revision}".`);
  }
  await writeRef(cacheDir, repo, revision, commit);

  const plan = planDownload(repo, listing, req.files);
  const snapshot = snapshotFolder(cacheDir, repo, commit);

  const fetchOne = async (file: string): Promise<void> => {
    const pointer = join(snapshot, file);
    if (await existsFollowing(pointer)) return;
    const state = newState();
    const onProgress = req.onProgress;
    let reported = -1;
    const progress = onProgress && ((loaded: number, total: number | undefined) => {
      reported = loaded;
      onProgress({ file, loaded, total });
    });
    try {
      await downloadFileToCacheDir({
        repo: { type: 'model', name: repo },
        path: file,
        revision: commit,
        hubUrl: endpoint,
        cacheDir,
        fetch: createHubFetch(state, progress),
      });
    } catch (e) {
      throw toHubError(e, context(state, file));
    }
    if (onProgress) {
      // A final event for every file, also when the body was not observable (e.g. Xet-backed downloads).
      const size = (await stat(pointer)).size;
      if (reported !== size) onProgress({ file, loaded: size, total: size });
    }
  };

  await mapPool(plan.files, PARALLEL_DOWNLOADS, fetchOne);
  if (plan.index !== undefined) {
    await fetchOne(plan.index);
    const shards = await readShardNames(join(snapshot, plan.index));
    const have = new Set(listing);
    const absent = shards.filter((s) => !have.has(s));
    if (absent.length > 0) {
      throw new HubError('invalid-repo', `"${repo}@${revision}": ${plan.index} names missing shard(s): ${absent.join(', ')}.`);
    }
    await mapPool(shards, PARALLEL_DOWNLOADS, fetchOne);
  }
  return snapshot;
}
