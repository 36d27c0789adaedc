/**
 * Crash-safe checkpoint writer.
 *
 * Order of operations (one writer per run directory is assumed):
 * 1. everything is written into `checkpoints/.tmp-step-NNNNNN-<pid>-<hex>/`, each file fsynced, the COMPLETE
 *    manifest last, then the folder itself fsynced;
 * 2. the folder is renamed to `step-NNNNNN` (atomic on POSIX) and `checkpoints/` is fsynced; a folder already there
 *    for the same step is first renamed aside to `.old-step-NNNNNN-…` and deleted once the new one is durable
 *    (the loader falls back to such a folder if a crash comes in between);
 * 3. `checkpoints/latest` is replaced by write-temporary + rename + fsync;
 * 4. leftovers of crashed writers are removed and, with `keep`, older checkpoints are pruned.
 * A crash at any point leaves the previous checkpoint loadable by `loadLatestCheckpoint`.
 */
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors } from '../io/safetensors-write.ts';
import { errorCode, fsyncDir, mkdirDurable, processAlive, replaceFileAtomic, uniqueTag, writeDurable } from './fs-durable.ts';
import { encodeJson, isJsonObject } from './json-state.ts';
import { listCheckpoints } from './scan.ts';
import {
  CHECKPOINT_FILES as F, CHECKPOINTS_DIR, checkStep, DATA_FILES, FORMAT, FORMAT_VERSION, parseSideDirName, stepDirName,
  type CheckpointData, type SaveOptions,
} from './types.ts';

function checkInput(ckpt: CheckpointData, opts: SaveOptions): void {
  checkStep(ckpt.step, 'saveCheckpoint');
  if (!(ckpt.tensors instanceof Map)) throw new Error('saveCheckpoint: tensors must be a Map<string, HostTensor>');
  if (!(ckpt.optimizer instanceof Map)) throw new Error('saveCheckpoint: optimizer must be a Map<string, HostTensor>');
  if (!isJsonObject(ckpt.state)) throw new Error('saveCheckpoint: state must be a plain JSON object');
  const keep = opts.keep;
  if (keep !== undefined && (!Number.isSafeInteger(keep) || keep < 1)) {
    throw new Error(`saveCheckpoint: keep must be a positive integer, found ${String(keep)}`);
  }
}

/** state.json: the user's state plus the step and the tensor name order (safetensors files sort by name). */
function stateFileText(ckpt: CheckpointData): string {
  encodeJson(ckpt.state, 'state'); // throws on BigInt etc. with a path from `state`, before anything is written
  const file = {
    format: FORMAT, version: FORMAT_VERSION, step: ckpt.step, createdAt: new Date().toISOString(),
    params: [...ckpt.tensors.keys()], optimizer: [...ckpt.optimizer.keys()], state: ckpt.state,
  };
  return `${encodeJson(file, 'checkpoint', '  ')}\n`;
}

/** Renames the finished temporary folder to its final name, moving an existing folder of that name aside. */
async function placeFolder(dir: string, tmp: string, name: string): Promise<void> {
  const final = join(dir, name);
  try {
    await rename(tmp, final);
  } catch (e) {
    if (!['ENOTEMPTY', 'EEXIST', 'EPERM', 'EACCES', 'EISDIR'].includes(errorCode(e) ?? '')) throw e;
    const aside = join(dir, `.old-${name}-${uniqueTag()}`);
    await rename(final, aside);
    try {
      await rename(tmp, final);
    } catch (e2) {
      await rename(aside, final).catch(() => undefined);
      throw e2;
    }
    await fsyncDir(dir);
    await rm(aside, { recursive: true, force: true });
    return;
  }
  await fsyncDir(dir);
}

/**
 * Removes `.tmp-*` / `.old-*` folders and `latest.tmp-*` files whose writer is gone (or is this process, whose own
 * save has finished). Liveness is judged by pid on this machine; a leftover whose pid was reused stays until later.
 */
async function removeStale(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const side = parseSideDirName(name);
    const pid = side?.pid ?? (name.startsWith(`${F.latest}.tmp-`) ? Number(name.split('-')[1]) : undefined);
    if (pid === undefined) continue;
    if (pid === process.pid || !processAlive(pid)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/** Deletes checkpoints below `step` beyond the newest `keep - 1` complete ones (and incomplete ones below `step`). */
async function prune(runDir: string, step: number, keep: number): Promise<void> {
  const older = (await listCheckpoints(runDir)).filter((c) => c.step < step).sort((a, b) => b.step - a.step);
  const kept = new Set(older.filter((c) => c.complete).slice(0, keep - 1).map((c) => c.name));
  for (const c of older) if (!kept.has(c.name)) await rm(c.path, { recursive: true, force: true });
}

/**
 * Saves a checkpoint as `<runDir>/checkpoints/step-NNNNNN/` (see the module comment for the crash-safe order of
 * operations) and points `checkpoints/latest` at it; returns the folder's path. Tensors keep their dtypes
 * bit-exactly; `state` must be plain JSON data (see `CheckpointData.state`). Replaces an existing folder of the
 * same step. With `keep`, prunes older checkpoints (see `SaveOptions.keep`).
 */
export async function saveCheckpoint(runDir: string, ckpt: CheckpointData, opts: SaveOptions = {}): Promise<string> {
  checkInput(ckpt, opts);
  const stateText = stateFileText(ckpt);
  const dir = join(runDir, CHECKPOINTS_DIR);
  await mkdirDurable(dir);
  const name = stepDirName(ckpt.step);
  const tmp = join(dir, `.tmp-${name}-${uniqueTag()}`);
  const meta = { format: FORMAT, step: String(ckpt.step) };
  let placed = false;
  try {
    await mkdirDurable(tmp);
    await writeSafetensors(join(tmp, F.params), ckpt.tensors, { ...meta, content: 'params' });
    await writeSafetensors(join(tmp, F.optimizer), ckpt.optimizer, { ...meta, content: 'optimizer' });
    await writeDurable(join(tmp, F.state), stateText);
    const files: Record<string, number> = {};
    for (const f of DATA_FILES) files[f] = (await stat(join(tmp, f))).size;
    const manifest = encodeJson({ format: FORMAT, version: FORMAT_VERSION, step: ckpt.step, files }, 'COMPLETE', '  ');
    await writeDurable(join(tmp, F.complete), `${manifest}\n`);
    await fsyncDir(tmp);
    await placeFolder(dir, tmp, name);
    placed = true;
  } finally {
    if (!placed) await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  }
  await replaceFileAtomic(join(dir, F.latest), `${name}\n`);
  await removeStale(dir);
  if (opts.keep !== undefined) await prune(runDir, ckpt.step, opts.keep);
  return join(dir, name);
}
