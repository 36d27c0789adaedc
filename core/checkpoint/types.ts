/**
 * Types, file names and folder naming of training checkpoints.
 *
 * Layout of a run directory:
 * ```
 * <runDir>/checkpoints/
 *   latest                      text file holding the folder name of the newest checkpoint, e.g. "step-000120\n"
 *   step-000120/
 *     params.safetensors        trainable parameters
 *     optimizer.safetensors     optimizer state tensors (e.g. "exp_avg/<param>")
 *     state.json                JSON state (see json-state.ts) plus the tensor name order
 *     COMPLETE                  written last: a small JSON manifest with the step and every file's size
 *   .tmp-step-000140-<pid>-<hex>/   a checkpoint being written (or left by a writer that crashed)
 *   .old-step-000120-<pid>-<hex>/   a checkpoint being replaced by a re-save of the same step
 * ```
 */
import type { HostTensor } from '../ir/host.ts';

/** One training checkpoint, as saved and as loaded. */
export interface CheckpointData {
  /** The optimizer step the checkpoint was taken after; a non-negative safe integer. */
  step: number;
  /** Trainable parameters by name. Loaded in the order they were saved in. */
  tensors: Map<string, HostTensor>;
  /** Optimizer state tensors by name, e.g. `exp_avg/<param>`. Loaded in the order they were saved in. */
  optimizer: Map<string, HostTensor>;
  /**
   * Plain JSON data: optimizer scalars, RNG state, data stream position, plugin state, config hash. Every finite
   * number round-trips bit-exactly (-0 included). Rejected with an error naming the path: BigInt, NaN, ±Infinity,
   * integers beyond ±(2^53 - 1) (store 64-bit words such as RNG state as strings), functions, symbols, class
   * instances (Map, Date, typed arrays...) and cycles. Object properties that are `undefined` are dropped, as in JSON.
   */
  state: Record<string, unknown>;
}

/** A checkpoint returned by `loadLatestCheckpoint`. */
export interface LoadedCheckpoint extends CheckpointData {
  /** The folder it was read from. */
  path: string;
  /** Problems met on the way (broken `latest`, incomplete or corrupt folders skipped); empty when all was well. */
  warnings: string[];
}

/** Options of `saveCheckpoint`. */
export interface SaveOptions {
  /**
   * Keep the new checkpoint and the `keep - 1` newest complete ones with a smaller step; delete older ones (and
   * incomplete `step-*` folders below the new step). Checkpoints with a larger step (left by an abandoned run
   * that was resumed from an earlier checkpoint) are not touched. A positive integer; by default nothing is pruned.
   */
  keep?: number;
}

/** Options of `loadLatestCheckpoint`. */
export interface LoadOptions {
  /** Called with each warning as it arises (they are also returned in `warnings`). Nothing is printed by default. */
  onWarning?: (message: string) => void;
}

/** One `step-*` folder found by `listCheckpoints`. */
export interface CheckpointInfo {
  /** Folder name, e.g. `step-000120`. */
  name: string;
  step: number;
  /** Absolute or runDir-relative path of the folder (as `runDir` was given). */
  path: string;
  /** Whether it holds a valid COMPLETE marker for its step (the files themselves are checked only on load). */
  complete: boolean;
}

/** Sub-folder of the run directory that holds the checkpoints. */
export const CHECKPOINTS_DIR = 'checkpoints';
/** File names inside a checkpoint folder and the pointer file beside them. */
export const CHECKPOINT_FILES = {
  params: 'params.safetensors',
  optimizer: 'optimizer.safetensors',
  state: 'state.json',
  complete: 'COMPLETE',
  latest: 'latest',
} as const;

/** The data files of a checkpoint folder, whose sizes the COMPLETE manifest records. */
export const DATA_FILES = [CHECKPOINT_FILES.params, CHECKPOINT_FILES.optimizer, CHECKPOINT_FILES.state] as const;

/** Format tags written into COMPLETE, state.json and the safetensors metadata. */
export const FORMAT = 'tuneforge-checkpoint';
export const FORMAT_VERSION = 1;

const STEP_DIR = /^step-(\d{6,})$/;
const SIDE_DIR = /^\.(tmp|old)-step-(\d{6,})-(\d+)-[0-9a-f]+$/;

/** Throws unless `step` is a non-negative safe integer. */
export function checkStep(step: unknown, where: string): number {
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) {
    throw new Error(`${where}: step must be a non-negative safe integer, found ${String(step)}`);
  }
  return step;
}

/** Folder name of a checkpoint: `step-` and the step zero-padded to at least six digits. */
export function stepDirName(step: number): string {
  return `step-${String(checkStep(step, 'stepDirName')).padStart(6, '0')}`;
}

/** The step of a `step-NNNNNN` folder name, or undefined for any other name. */
export function parseStepDirName(name: string): number | undefined {
  const m = STEP_DIR.exec(name);
  if (m === null) return undefined;
  const step = Number(m[1]);
  return Number.isSafeInteger(step) && stepDirName(step) === name ? step : undefined;
}

/** A `.tmp-step-…` or `.old-step-…` folder name taken apart, or undefined for any other name. */
export function parseSideDirName(name: string): { kind: 'tmp' | 'old'; step: number; pid: number } | undefined {
  const m = SIDE_DIR.exec(name);
  if (m === null) return undefined;
  return { kind: m[1] === 'tmp' ? 'tmp' : 'old', step: Number(m[2]), pid: Number(m[3]) };
}
