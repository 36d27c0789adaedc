/** A run's state outside the training loop (for `eval` and `export` commands): the model with its latest checkpoint. */
import { loadLatestCheckpoint } from '../checkpoint/index.ts';
import type { HostTensor } from '../ir/host.ts';
import type { Plugin } from '../plugin/hooks.ts';
import type { TrainConfig } from './config.ts';
import { evaluateRun } from './evaluate.ts';
import { finishRun } from './finish.ts';
import { CompileCache } from './graphs.ts';
import { loadRunDataInChild } from './data-process.ts';
import { setupModel, trainableSet, type RunModel } from './setup.ts';

export interface OpenedRun {
  m: RunModel;
  /** Parameters restored from the checkpoint (empty when the run has none: the base model as configured). */
  trained: Map<string, HostTensor>;
  step: number;
}

export async function openRun(cfg: TrainConfig, plugins: readonly Plugin[], log: (l: string) => void): Promise<OpenedRun> {
  const m = await setupModel(cfg, plugins, () => 0, log);
  const ckpt = await loadLatestCheckpoint(cfg.output, { onWarning: (w) => log(`checkpoint: ${w}`) });
  const trained = new Map<string, HostTensor>();
  if (ckpt) {
    for (const [n, t] of ckpt.tensors) {
      m.params.set(n, t);
      trained.set(n, t);
    }
    for (const p of m.driver.plugins) {
      const state = (ckpt.state.plugins as Record<string, Record<string, unknown>> | undefined)?.[p.name];
      if (state) p['state:load']?.(m.ctx, state);
    }
    log(`loaded ${ckpt.path} (step ${ckpt.step})`);
  } else {
    log(`no checkpoint in ${cfg.output}: using the initial weights`);
    for (const n of trainableSet(m)) trained.set(n, m.params.get(n)!);
  }
  return { m, trained, step: ckpt?.step ?? 0 };
}

export async function evaluateCommand(cfg: TrainConfig, plugins: readonly Plugin[], log: (l: string) => void): Promise<Record<string, number>> {
  const { m } = await openRun(cfg, plugins, log);
  const data = await loadRunDataInChild(cfg, m.dir, log, m.ctx.model.config.maxPositions);
  const cache = new CompileCache();
  try {
    return await evaluateRun(cfg, m, data, cache);
  } finally {
    await cache.clear();
  }
}

export async function exportCommand(cfg: TrainConfig, plugins: readonly Plugin[], log: (l: string) => void): Promise<string[]> {
  const { m, trained } = await openRun(cfg, plugins, log);
  return finishRun(cfg, m, trained, log);
}
