/** The end of a run: merged model export and plugin artifacts; generated samples (before and after training). */
import { join } from 'node:path';
import { createGenerator } from '../generate/generator.ts';
import type { HostTensor } from '../ir/host.ts';
import type { PluginContext } from '../plugin/context.ts';
import type { Plugin } from '../plugin/hooks.ts';
import type { TrainConfig } from './config.ts';
import { writeModelFolder } from './export.ts';
import type { RunModel } from './setup.ts';

/**
 * Base weights with every plugin's parameters folded in: base weights a plugin replaced in memory are put back first
 * (`export:base`, e.g. NF4 dequantises), then every `export:merge` runs on them.
 */
export function mergedWeights(m: RunModel, trained: ReadonlyMap<string, HostTensor>): Map<string, HostTensor> {
  const kept = new Map([...m.params].filter(([n]) => m.baseNames.has(n)));
  const base = m.driver.waterfallSync('export:base', m.ctx, kept);
  return m.driver.waterfallSync('export:merge', m.ctx, base, trained);
}

/** Plugins whose additions cannot be folded into the base weights (see `Plugin.mergeable`). */
export function unmergeable(plugins: readonly Plugin[]): string[] {
  return plugins.filter((p) => p.mergeable === false).map((p) => p.name);
}

/** `export.merged: true` with a plugin that cannot be merged: reported with the plugins' problems, before weights load. */
export function mergedExportProblems(cfg: Pick<TrainConfig, 'export'>, plugins: readonly Plugin[]): string[] {
  const cannot = unmergeable(plugins);
  if (cfg.export.merged !== true || cannot.length === 0) return [];
  return [
    `export.merged is true, but ${cannot.join(', ')} ${cannot.length === 1 ? 'adds' : 'add'} computation that cannot be folded into the base weights ` +
      "(a merged model would silently drop it): set export.merged to 'auto' or false and use export/adapter",
  ];
}

export async function finishRun(cfg: TrainConfig, m: RunModel, trained: ReadonlyMap<string, HostTensor>, log: (l: string) => void): Promise<string[]> {
  const exportDir = join(cfg.output, 'export');
  const written: string[] = [];
  const cannot = unmergeable(m.driver.plugins);
  const writeMerged = cfg.export.merged === true || (cfg.export.merged === 'auto' && cannot.length === 0);
  if (cfg.export.merged === 'auto' && cannot.length) log(`export: no merged model (${cannot.join(', ')} cannot be folded into the base weights); the adapter holds the result`);
  const merged = writeMerged ? mergedWeights(m, trained) : undefined;
  if (merged) written.push(...(await writeModelFolder(join(exportDir, 'model'), m.ctx.model.config, merged, m.dir)));
  if (cfg.export.adapters) {
    for (const { value } of await m.driver.collect('export:artifacts', m.ctx, exportDir, trained)) written.push(...value);
  }
  if (written.length) log(`exported: ${written.map((w) => w.slice(cfg.output.length + 1)).join(', ')}`);
  return written;
}

export interface Sample {
  prompt: string;
  completion: string;
}

/**
 * Greedy generations of `eval.samples` from the given parameters through the plugins' own hooks, so every technique
 * (merged or not) generates as it trains. Logged as `sample: <prompt><completion>`.
 */
export async function generateSamples(cfg: TrainConfig, m: RunModel, trained: ReadonlyMap<string, HostTensor>, log: (l: string) => void, label = 'sample'): Promise<Sample[]> {
  if (!cfg.eval.samples.length) return [];
  const ctx: PluginContext = { ...m.ctx, phase: 'generate' };
  const weights = new Map([...m.params, ...trained]);
  const gen = await createGenerator({ config: m.ctx.model.config, weights, hooks: () => m.driver.modelHooks(ctx), maxLen: Math.min(512, m.ctx.model.config.maxPositions) });
  const stops = [...m.ctx.model.config.eosTokenIds, ...(m.tok.bosId !== null ? [m.tok.bosId] : [])];
  const out: Sample[] = [];
  try {
    for (const prompt of cfg.eval.samples) {
      const ids = await gen.generate(m.tok.encode(prompt), { maxNewTokens: cfg.eval.maxNewTokens, stopTokens: stops });
      const completion = m.tok.decode(ids, { skipSpecialTokens: true });
      log(`${label}: ${prompt}${completion}`);
      out.push({ prompt, completion });
    }
  } finally {
    await gen.release();
  }
  return out;
}
