/** What `train()` is given and what it returns (core/train/trainer.ts). */
import type { HostTensor } from '../ir/host.ts';
import type { Plugin } from '../plugin/hooks.ts';
import type { ProgressStream } from '../report/index.ts';
import type { Runner } from '../../runners/types.ts';
import type { TrainConfig } from './config.ts';

export interface TrainOptions {
  config: TrainConfig;
  plugins: readonly Plugin[];
  /** Continue from the latest checkpoint in the output folder when there is one (default true). */
  resume?: boolean;
  /** Stop after this many steps of this process without finishing the run (tests of kill-and-resume). */
  stopAfterSteps?: number;
  /** Where progress is drawn (default stderr); lines of the log go to `log`. */
  progress?: ProgressStream;
  log?: (line: string) => void;
  /** Called after each metrics record is written (one per step, and the final evaluation's), e.g. to stream it. */
  onRecord?: (record: Readonly<Record<string, number>>) => void;
  /** Called after a checkpoint is saved, with its step and folder. */
  onCheckpoint?: (step: number, dir: string) => void;
  /**
   * Checked before each step: once aborted, the run saves a checkpoint of the steps done (unless the latest one is of
   * this step already) and returns unfinished, so a resumed run loses nothing (pausing a job).
   */
  signal?: AbortSignal;
  /**
   * Where the training and evaluation steps run (default: onnxruntime-node in this process), e.g.
   * `sidecar(url, { token })` (runners/sidecar.ts) for a GPU elsewhere. Sampling generations stay in this process.
   */
  runner?: Runner;
}

export interface TrainResult {
  runDir: string;
  step: number;
  finished: boolean;
  /** Final values of every trained parameter (the best checkpoint's with checkpoint.best). */
  trained: Map<string, HostTensor>;
  metrics: Record<string, number>;
  exported: string[];
  /** With checkpoint.best: the step whose weights were kept and exported. */
  bestStep?: number;
}
