/**
 * The Hugging Face cache layout, shared with Python's `huggingface_hub`:
 *
 *   <cache>/models--owner--name/
 *     blobs/<etag>                      file contents (etag = sha256 for LFS files, git blob sha1 otherwise)
 *     snapshots/<commit>/<path>         relative symlinks into ../../blobs
 *     refs/<revision>                   the commit hash a branch/tag resolved to (not written for commit hashes)
 */
import { join, normalize, isAbsolute, sep } from 'node:path';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { getRepoFolderName } from '@huggingface/hub';

const COMMIT_HASH = /^[0-9a-f]{40}$/;

/** True for a full 40-hex git commit hash. */
export function isCommitHash(revision: string): boolean {
  return COMMIT_HASH.test(revision);
}

/** `<cache>/models--owner--name`. */
export function repoCacheFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, getRepoFolderName({ type: 'model', name: repo }));
}

/** `<repo folder>/snapshots/<commit>`. */
export function snapshotFolder(cacheDir: string, repo: string, commit: string): string {
  return join(repoCacheFolder(cacheDir, repo), 'snapshots', commit);
}

function refPath(cacheDir: string, repo: string, revision: string): string {
  // Revisions like "refs/pr/1" become nested folders, exactly as Python does.
  return join(repoCacheFolder(cacheDir, repo), 'refs', ...revision.split('/'));
}

/** The commit a revision points to in the cache, or undefined when unknown. Commit hashes map to themselves. */
export async function readRef(cacheDir: string, repo: string, revision: string): Promise<string | undefined> {
  if (isCommitHash(revision)) return revision;
  try {
    const commit = (await readFile(refPath(cacheDir, repo, revision), 'utf8')).trim();
    return isCommitHash(commit) ? commit : undefined;
  } catch {
    return undefined;
  }
}

/** Records `refs/<revision>` = commit (skipped when the revision is the commit itself). */
export async function writeRef(cacheDir: string, repo: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const p = refPath(cacheDir, repo, revision);
  await mkdir(join(p, '..'), { recursive: true });
  let current: string | undefined;
  try {
    current = (await readFile(p, 'utf8')).trim();
  } catch {
    current = undefined;
  }
  if (current !== commit) await writeFile(p, commit);
}

/** True when the path exists, following symlinks (a dangling snapshot link counts as missing). */
export async function existsFollowing(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** Rejects repo file paths that could escape the snapshot folder (they come from the server / an index file). */
export function assertSafeRelativePath(p: string): void {
  const n = normalize(p);
  if (p.length === 0 || isAbsolute(p) || n.startsWith('..') || n.split(sep).includes('..') || p.includes('\0')) {
    throw new Error(`unsafe file path in repo: ${JSON.stringify(p)}`);
  }
}
