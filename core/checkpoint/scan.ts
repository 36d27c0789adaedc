/**
 * Finding checkpoint folders and reading their COMPLETE manifests.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errorCode, errorMessage } from './fs-durable.ts';
import { isJsonObject, parseJsonObject } from './json-state.ts';
import {
  CHECKPOINT_FILES as F, CHECKPOINTS_DIR, FORMAT, FORMAT_VERSION, parseStepDirName, type CheckpointInfo,
} from './types.ts';

/** What the COMPLETE marker of a finished checkpoint folder records. */
export interface Manifest {
  readonly step: number;
  /** Size in bytes of each data file of the folder. */
  readonly files: Readonly<Record<string, number>>;
}

/** Reads and validates `<folder>/COMPLETE`; throws with the reason when it is missing or malformed. */
export async function readManifest(folder: string): Promise<Manifest> {
  const path = join(folder, F.complete);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') {
      if (!(await stat(folder).then((s) => s.isDirectory(), () => false))) throw new Error(`${folder}: no such checkpoint folder`);
      throw new Error(`${folder}: incomplete checkpoint (no ${F.complete} marker; its writer did not finish)`);
    }
    throw new Error(`${path}: cannot read (${errorMessage(e)})`);
  }
  const m = parseJsonObject(text, path);
  if (m['format'] !== FORMAT || m['version'] !== FORMAT_VERSION) {
    throw new Error(`${path}: not a ${FORMAT} v${FORMAT_VERSION} marker (format ${JSON.stringify(m['format'])}, version ${JSON.stringify(m['version'])})`);
  }
  const step = m['step'];
  const files = m['files'];
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) throw new Error(`${path}: invalid step ${JSON.stringify(step)}`);
  if (!isJsonObject(files) || !Object.values(files).every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) {
    throw new Error(`${path}: "files" must map file names to byte sizes`);
  }
  return { step, files: files as Record<string, number> };
}

/** Names in `<runDir>/checkpoints`, or an empty list when that folder does not exist. */
export async function checkpointEntries(runDir: string): Promise<string[]> {
  try {
    return await readdir(join(runDir, CHECKPOINTS_DIR));
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return [];
    throw e;
  }
}

/**
 * Every `step-NNNNNN` folder of a run, by ascending step, with whether it holds a valid COMPLETE marker for its
 * step. Folders being written (`.tmp-*`) or replaced (`.old-*`) are not listed.
 */
export async function listCheckpoints(runDir: string): Promise<CheckpointInfo[]> {
  const out: CheckpointInfo[] = [];
  for (const name of await checkpointEntries(runDir)) {
    const step = parseStepDirName(name);
    if (step === undefined) continue;
    const path = join(runDir, CHECKPOINTS_DIR, name);
    const complete = await readManifest(path).then((m) => m.step === step, () => false);
    out.push({ name, step, path, complete });
  }
  return out.sort((a, b) => a.step - b.step);
}

