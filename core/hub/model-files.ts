/** Which files of a repo make up a usable model, and how to check a snapshot has them. */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { assertSafeRelativePath, existsFollowing } from './cache-layout.ts';
import { HubError } from './errors.ts';

/** Files every default download needs. */
export const REQUIRED_FILES: readonly string[] = ['config.json', 'tokenizer.json', 'tokenizer_config.json'];
/** Files downloaded when the repo has them. */
export const OPTIONAL_FILES: readonly string[] = ['generation_config.json', 'special_tokens_map.json'];
/** Single-file weights. */
export const SAFETENSORS_FILE = 'model.safetensors';
/** Sharded weights: this index's `weight_map` names the shard files. */
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

/** What to download: `files` first, then (when `index` is set) the index and the shards it names. */
export interface DownloadPlan {
  readonly files: readonly string[];
  readonly index?: string;
}

/**
 * Picks the files to download from the repo's file listing.
 * With `explicit`, exactly those files (all must exist); otherwise the default model set.
 */
export function planDownload(repo: string, listing: readonly string[], explicit?: readonly string[]): DownloadPlan {
  const have = new Set(listing);
  const missing = (names: readonly string[]): string[] => names.filter((n) => !have.has(n));
  if (explicit !== undefined) {
    explicit.forEach(assertSafeRelativePath);
    const absent = missing(explicit);
    if (absent.length > 0) throw new HubError('entry-not-found', `Repo "${repo}" has no file(s): ${absent.join(', ')}.`);
    return { files: [...explicit] };
  }
  const absent = missing(REQUIRED_FILES);
  if (absent.length > 0) {
    throw new HubError('invalid-repo', `Repo "${repo}" lacks required file(s): ${absent.join(', ')}.`);
  }
  const files = [...REQUIRED_FILES, ...OPTIONAL_FILES.filter((f) => have.has(f))];
  if (have.has(SAFETENSORS_FILE)) return { files: [...files, SAFETENSORS_FILE] };
  if (have.has(SAFETENSORS_INDEX)) return { files, index: SAFETENSORS_INDEX };
  const weights = listing.filter((f) => /\.(bin|pt|pth|gguf|h5|msgpack|onnx)$/.test(f));
  throw new HubError(
    'invalid-repo',
    `Repo "${repo}" has no safetensors weights (${SAFETENSORS_FILE} or ${SAFETENSORS_INDEX})` +
      (weights.length > 0 ? `; it only has: ${weights.join(', ')}. Convert them to safetensors first.` : '.'),
  );
}

/** The shard file names of a `model.safetensors.index.json`, deduplicated, in first-seen order. */
export async function readShardNames(indexPath: string): Promise<string[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new HubError('invalid-repo', `Cannot read safetensors index ${indexPath}: ${(e as Error).message}`, { cause: e });
  }
  const map = typeof parsed === 'object' && parsed !== null ? (parsed as { weight_map?: unknown }).weight_map : undefined;
  if (typeof map !== 'object' || map === null) {
    throw new HubError('invalid-repo', `Safetensors index ${indexPath} has no "weight_map" object.`);
  }
  const shards = new Set<string>();
  for (const v of Object.values(map)) {
    if (typeof v !== 'string') throw new HubError('invalid-repo', `Safetensors index ${indexPath}: non-string shard name.`);
    assertSafeRelativePath(v);
    shards.add(v);
  }
  return [...shards];
}

/**
 * Lists what a snapshot folder lacks for the given request (explicit files, or the default model set).
 * Empty means complete.
 */
export async function missingFromSnapshot(dir: string, explicit?: readonly string[]): Promise<string[]> {
  const absent: string[] = [];
  const check = async (f: string): Promise<boolean> => {
    const ok = await existsFollowing(join(dir, f));
    if (!ok) absent.push(f);
    return ok;
  };
  if (explicit !== undefined) {
    for (const f of explicit) await check(f);
    return absent;
  }
  for (const f of REQUIRED_FILES) await check(f);
  if (await existsFollowing(join(dir, SAFETENSORS_FILE))) return absent;
  if (!(await existsFollowing(join(dir, SAFETENSORS_INDEX)))) {
    absent.push(`${SAFETENSORS_FILE} (or ${SAFETENSORS_INDEX} + shards)`);
    return absent;
  }
  for (const shard of await readShardNames(join(dir, SAFETENSORS_INDEX))) await check(shard);
  return absent;
}
