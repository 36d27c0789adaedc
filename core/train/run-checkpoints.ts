/**
 * A run's checkpoints: the regular ones (weights trained so far, optimizer state, the batch stream's position,
 * plugin state, model selection), which a run resumes from exactly, and the best one (checkpoint.best: weights and
 * plugin state only, in a folder of its own so rotation never drops it), which the run exports at its end.
 */
import { join } from 'node:path';
import { loadLatestCheckpoint, saveCheckpoint } from '../checkpoint/index.ts';
import { BatchStream } from '../data/stream.ts';
import type { HostTensor } from '../ir/host.ts';
import type { Optimizer } from '../optim/optimizer.ts';
import type { TrainConfig } from './config.ts';
import { optimizerFromCheckpoint, optimizerToCheckpoint } from './optimizer.ts';
import { PLUGIN_TENSOR_PREFIX, joinPluginState, splitPluginState } from './plugin-state.ts';
import type { Selection, SelectionState } from './selection.ts';
import type { RunModel } from './setup.ts';

/** Where the best checkpoint lives. */
export const bestCheckpointDir = (runDir: string) => join(runDir, 'best');

interface CheckpointState {
  stream: Parameters<typeof BatchStream.restore>[2];
  optimizer: Record<string, number>;
  plugins: Record<string, Record<string, unknown>>;
  everTrained: string[];
  selection?: SelectionState;
}

/** What a regular checkpoint holds beyond the model, as the run has it now. */
export interface RunPosition {
  step: number;
  trainable: readonly string[];
  everTrained: ReadonlySet<string>;
  stream: BatchStream;
  selection: Selection;
}

/** A regular checkpoint read back: the weights and plugin state are in place; the rest for the run to take over. */
export interface Resumed {
  path: string;
  step: number;
  stream: BatchStream;
  everTrained: readonly string[];
}

export class RunCheckpoints {
  constructor(
    private readonly cfg: TrainConfig,
    private readonly m: RunModel,
    private readonly optimizer: Optimizer,
    private readonly log: (line: string) => void,
  ) {}

  /** The current values of the tensors trained so far (what checkpoints and exports hold). */
  trained(everTrained: ReadonlySet<string>): Map<string, HostTensor> {
    return new Map([...everTrained].map((n) => [n, this.m.params.get(n)!]));
  }

  /** Saves a regular checkpoint (older ones beyond checkpoint.keep are removed); returns its folder. */
  async save(at: RunPosition): Promise<string> {
    await this.optimizer.syncState?.(); // moments held on a runner come back for the checkpoint
    const opt = optimizerToCheckpoint(this.optimizer);
    const tensors = new Map(opt.tensors);
    const plugins = await this.pluginState(tensors);
    const state: CheckpointState = { stream: at.stream.state(), optimizer: opt.scalars, plugins, everTrained: [...at.everTrained], selection: at.selection.state };
    return saveCheckpoint(this.cfg.output, {
      step: at.step, tensors: this.trained(at.everTrained), optimizer: tensors, state: { ...state, trainable: at.trainable } as unknown as Record<string, unknown>,
    }, { keep: this.cfg.checkpoint.keep });
  }

  /**
   * Reads the latest regular checkpoint, if any: its weights go into the model, its optimizer state into the
   * optimizer, its plugin state to the plugins and its selection state into `selection`.
   */
  async resume(data: ConstructorParameters<typeof BatchStream>[0], streamOptions: ConstructorParameters<typeof BatchStream>[1], selection: Selection): Promise<Resumed | undefined> {
    const ckpt = await loadLatestCheckpoint(this.cfg.output, { onWarning: (w) => this.log(`checkpoint: ${w}`) });
    if (!ckpt) return undefined;
    for (const [name, v] of ckpt.tensors) this.m.params.set(name, v);
    const state = ckpt.state as unknown as CheckpointState;
    optimizerFromCheckpoint(this.optimizer, new Map([...ckpt.optimizer].filter(([k]) => !k.startsWith(PLUGIN_TENSOR_PREFIX))), state.optimizer);
    this.loadPluginState(state.plugins, ckpt.optimizer);
    selection.restore(state.selection);
    return { path: ckpt.path, step: ckpt.step, stream: BatchStream.restore(data, streamOptions, state.stream), everTrained: state.everTrained };
  }

  /** The weights (and plugin state) of the best evaluation so far: no optimizer state, they are only ever exported. */
  async saveBest(step: number, everTrained: ReadonlySet<string>): Promise<void> {
    if (this.cfg.checkpoint.best === undefined) return;
    const tensors = new Map<string, HostTensor>();
    const plugins = await this.pluginState(tensors);
    await saveCheckpoint(bestCheckpointDir(this.cfg.output), { step, tensors: this.trained(everTrained), optimizer: tensors, state: { plugins } }, { keep: 1 });
  }

  /** Puts the best checkpoint's weights and plugin state in place of the last step's; returns the best step. */
  async restoreBest(selection: Selection, step: number): Promise<number | undefined> {
    const best = selection.best;
    if (this.cfg.checkpoint.best === undefined || best === null || best.step === step) return best?.step;
    const ckpt = await loadLatestCheckpoint(bestCheckpointDir(this.cfg.output));
    if (!ckpt || ckpt.step !== best.step) {
      this.log(`checkpoint.best: the best checkpoint on disk is ${ckpt ? `of step ${ckpt.step}` : 'missing'}, not of step ${best.step}: exporting the last step instead`);
      return undefined;
    }
    for (const [name, v] of ckpt.tensors) this.m.params.set(name, v);
    this.loadPluginState((ckpt.state as { plugins: Record<string, Record<string, unknown>> }).plugins, ckpt.optimizer);
    return best.step;
  }

  private async pluginState(tensors: Map<string, HostTensor>): Promise<Record<string, Record<string, unknown>>> {
    const plugins: Record<string, Record<string, unknown>> = {};
    for (const { plugin, value } of await this.m.driver.collect('state:save', this.m.ctx)) plugins[plugin] = splitPluginState(plugin, value, tensors);
    return plugins;
  }

  private loadPluginState(plugins: Record<string, Record<string, unknown>>, tensors: ReadonlyMap<string, HostTensor>): void {
    for (const p of this.m.driver.plugins) if (plugins[p.name]) p['state:load']?.(this.m.ctx, joinPluginState(p.name, plugins[p.name]!, tensors));
  }
}
