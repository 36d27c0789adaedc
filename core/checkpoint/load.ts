/**
 * Checkpoint reader: one folder (`loadCheckpoint`, strict) or the newest loadable one of a run
 * (`loadLatestCheckpoint`, which falls back past a broken `latest` pointer and incomplete or corrupt folders).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { openSafetensors } from '../io/safetensors-read.ts';
import type { HostTensor } from '../ir/host.ts';
import { errorCode, errorMessage } from './fs-durable.ts';
import { isJsonObject, parseJsonObject } from './json-state.ts';
import { checkpointEntries, readManifest } from './scan.ts';
import {
  CHECKPOINT_FILES as F, CHECKPOINTS_DIR, DATA_FILES, FORMAT, parseSideDirName, parseStepDirName,
  type CheckpointData, type LoadedCheckpoint, type LoadOptions,
} from './types.ts';

/** Reads every tensor of one checkpoint file, checking its step tag and that it holds exactly `names`. */
async function readTensors(path: string, names: unknown, step: number): Promise<Map<string, HostTensor>> {
  if (!Array.isArray(names) || !names.every((n): n is string => typeof n === 'string')) {
    throw new Error(`${path}: the tensor name list in ${F.state} is missing or malformed`);
  }
  const file = await openSafetensors(path);
  try {
    if (file.metadata['format'] !== FORMAT || file.metadata['step'] !== String(step)) {
      throw new Error(`${path}: metadata says step ${JSON.stringify(file.metadata['step'])}, expected "${step}"`);
    }
    const missing = names.filter((n) => !file.has(n));
    if (missing.length > 0 || file.names.length !== names.length) {
      throw new Error(
        `${path}: holds ${file.names.length} tensors but ${F.state} lists ${names.length}` +
          (missing.length > 0 ? `; missing: ${missing.slice(0, 5).map((n) => JSON.stringify(n)).join(', ')}` : ''),
      );
    }
    const out = new Map<string, HostTensor>();
    for (const n of names) out.set(n, await file.read(n));
    return out;
  } finally {
    await file.close();
  }
}

/**
 * Loads one checkpoint folder, checking it throughout: the COMPLETE marker, every file's size against it, the step
 * in the folder name, marker, state.json and both safetensors files, and the tensor names. Throws on any problem.
 */
export async function loadCheckpoint(folder: string): Promise<CheckpointData> {
  const manifest = await readManifest(folder);
  const step = manifest.step;
  const name = basename(folder);
  const named = parseStepDirName(name) ?? parseSideDirName(name)?.step;
  if (named !== undefined && named !== step) throw new Error(`${folder}: folder is named for step ${named} but holds step ${step}`);
  for (const f of DATA_FILES) {
    const want = manifest.files[f];
    const size = await stat(join(folder, f)).then((s) => s.size, (e: unknown) => `unreadable (${errorMessage(e)})`);
    if (size !== want) throw new Error(`${join(folder, f)}: ${typeof size === 'number' ? `${size} bytes` : size}, expected ${String(want)} bytes`);
  }
  const statePath = join(folder, F.state);
  const st = parseJsonObject(await readFile(statePath, 'utf8'), statePath);
  if (st['step'] !== step) throw new Error(`${statePath}: holds step ${JSON.stringify(st['step'])}, expected ${step}`);
  const state = st['state'];
  if (!isJsonObject(state)) throw new Error(`${statePath}: "state" must be a JSON object`);
  return {
    step,
    tensors: await readTensors(join(folder, F.params), st['params'], step),
    optimizer: await readTensors(join(folder, F.optimizer), st['optimizer'], step),
    state,
  };
}

/** The folder `latest` names: `{ name }`, `{ problem }` when it is unreadable or malformed, or `{}` when absent. */
async function readLatest(dir: string): Promise<{ name?: string; problem?: string }> {
  const path = join(dir, F.latest);
  try {
    const name = (await readFile(path, 'utf8')).trim();
    if (parseStepDirName(name) !== undefined) return { name };
    return { problem: `${path} holds ${JSON.stringify(name.slice(0, 40))}, not a checkpoint folder name` };
  } catch (e) {
    return errorCode(e) === 'ENOENT' ? {} : { problem: `${path}: cannot read (${errorMessage(e)})` };
  }
}

/** Fallback order: by step, newest first; for one step a `step-*` folder before a `.old-step-*` one. */
function fallbackOrder(entries: readonly string[]): string[] {
  const found = entries.flatMap((name) => {
    const step = parseStepDirName(name);
    if (step !== undefined) return [{ name, step, rank: 0 }];
    const side = parseSideDirName(name);
    return side?.kind === 'old' ? [{ name, step: side.step, rank: 1 }] : [];
  });
  return found.sort((a, b) => b.step - a.step || a.rank - b.rank || (a.name < b.name ? -1 : 1)).map((c) => c.name);
}

/**
 * Loads the checkpoint `<runDir>/checkpoints/latest` points to. When `latest` is missing or broken, or its folder
 * is incomplete or corrupt, falls back to the newest loadable checkpoint by step (including a `.old-step-*`
 * folder left by a crash during a same-step re-save), reporting each problem as a warning (returned in
 * `warnings` and passed to `opts.onWarning`). Returns null when the run has no loadable checkpoint.
 */
export async function loadLatestCheckpoint(runDir: string, opts: LoadOptions = {}): Promise<LoadedCheckpoint | null> {
  const warnings: string[] = [];
  const warn = (m: string): void => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  const dir = join(runDir, CHECKPOINTS_DIR);
  const entries = await checkpointEntries(runDir);
  const fallback = fallbackOrder(entries);
  const latest = await readLatest(dir);
  if (latest.problem !== undefined) warn(latest.problem);
  else if (latest.name === undefined && fallback.length > 0) warn(`${join(dir, F.latest)} is missing; using the newest complete checkpoint`);
  const order = latest.name === undefined ? fallback : [latest.name, ...fallback.filter((n) => n !== latest.name)];
  for (const [i, name] of order.entries()) {
    const path = join(dir, name);
    try {
      const data = await loadCheckpoint(path);
      if (i > 0) warn(`loaded ${path} (step ${data.step}) instead`);
      return { ...data, path, warnings };
    } catch (e) {
      warn(`skipping checkpoint ${name}: ${errorMessage(e)}`);
    }
  }
  if (order.length > 0) warn(`${dir}: no loadable checkpoint`);
  return null;
}
