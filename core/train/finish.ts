/** The end of a run: merged model export, plugin artifacts and generated samples. */
import { join } from 'node:path';
import { createGenerator } from '../generate/generator.ts';
import type { HostTensor } from '../ir/host.ts';
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

export async function finishRun(cfg: TrainConfig, m: RunModel, trained: ReadonlyMap<string, HostTensor>, log: (l: string) => void): Promise<string[]> {
  const exportDir = join(cfg.output, 'export');
  const written: string[] = [];
  const needMerged = cfg.export.merged || cfg.eval.samples.length > 0;
  const merged = needMerged ? mergedWeights(m, trained) : undefined;
  if (cfg.export.merged && merged) written.push(...(await writeModelFolder(join(exportDir, 'model'), m.ctx.model.config, merged, m.dir)));
  if (cfg.export.adapters) {
    for (const { value } of await m.driver.collect('export:artifacts', m.ctx, exportDir, trained)) written.push(...value);
  }
  if (written.length) log(`exported: ${written.map((w) => w.slice(cfg.output.length + 1)).join(', ')}`);
  if (merged && cfg.eval.samples.length) {
    const gen = await createGenerator({ config: m.ctx.model.config, weights: merged, maxLen: Math.min(512, m.ctx.model.config.maxPositions) });
    const stops = [...m.ctx.model.config.eosTokenIds, ...(m.tok.bosId !== null ? [m.tok.bosId] : [])];
    for (const prompt of cfg.eval.samples) {
      const ids = await gen.generate(m.tok.encode(prompt), { maxNewTokens: cfg.eval.maxNewTokens, stopTokens: stops });
      log(`sample: ${prompt}${m.tok.decode(ids, { skipSpecialTokens: true })}`);
    }
    await gen.release();
  }
  return written;
}
