/**
 * Crash-safe training checkpoints: `saveCheckpoint` writes `<runDir>/checkpoints/step-NNNNNN/` (params and optimizer
 * state as safetensors, JSON state, a COMPLETE marker) through a temporary folder and atomic renames, and updates
 * `checkpoints/latest`; `loadLatestCheckpoint` reads the newest loadable checkpoint, falling back past anything a
 * crash left half-written. See save.ts for the order of operations and types.ts for the layout.
 */
export { loadCheckpoint, loadLatestCheckpoint } from './load.ts';
export { saveCheckpoint } from './save.ts';
export { listCheckpoints } from './scan.ts';
export { encodeJson as encodeCheckpointState } from './json-state.ts';
export {
  CHECKPOINT_FILES, CHECKPOINTS_DIR, parseStepDirName, stepDirName,
  type CheckpointData, type CheckpointInfo, type LoadedCheckpoint, type LoadOptions, type SaveOptions,
} from './types.ts';
