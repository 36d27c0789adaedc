/**
 * Small durable file-system steps for the checkpoint writer: fsynced writes, directory fsync, atomic
 * replace-by-rename of small files, and a liveness check for the process that owns a temporary folder.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** The `code` of a Node.js system error, if any. */
export function errorCode(e: unknown): string | undefined {
  const code = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** The message of an error, whatever was thrown. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `<pid>-<8 random hex digits>`: unique names for temporary files and folders of this process. */
export function uniqueTag(): string {
  return `${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Creates `path` (which must not exist), writes `data`, fsyncs and closes it. */
export async function writeDurable(path: string, data: string | Uint8Array): Promise<void> {
  const fh = await open(path, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// Filesystems and platforms that cannot open or fsync a directory; there the rename itself is all we can do.
const DIR_SYNC_UNSUPPORTED = new Set(['EISDIR', 'EPERM', 'EACCES', 'EINVAL', 'ENOTSUP', 'EBADF']);

/** fsyncs a directory so that renames and creations inside it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
  } catch (e) {
    if (DIR_SYNC_UNSUPPORTED.has(errorCode(e) ?? '')) return;
    throw e;
  }
  try {
    await fh.sync();
  } catch (e) {
    if (!DIR_SYNC_UNSUPPORTED.has(errorCode(e) ?? '')) throw e;
  } finally {
    await fh.close();
  }
}

/** `mkdir -p`, then fsyncs the parent of every folder it created so the new entries are durable. */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  const top = resolve(first);
  for (let d = resolve(dir); ; d = dirname(d)) {
    await fsyncDir(dirname(d));
    if (d === top || d === dirname(d)) break;
  }
}

/**
 * Replaces a small file atomically: writes `<path>.tmp-<pid>-<hex>`, fsyncs it, renames it over `path` and fsyncs
 * the directory. A crash leaves either the old or the new content (plus, at worst, a stray temporary file).
 */
export async function replaceFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${uniqueTag()}`;
  let renamed = false;
  try {
    await writeDurable(tmp, data);
    await rename(tmp, path);
    renamed = true;
  } finally {
    if (!renamed) await rm(tmp, { force: true }).catch(() => undefined);
  }
  await fsyncDir(dirname(path));
}

/** Whether a process with this id exists (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errorCode(e) === 'EPERM';
  }
}
