/** Randomly initialised model folders at real shapes (speed and memory do not depend on the weight values). */
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig, randomWeights, writeSafetensors, type RawConfig } from '../../core/index.ts';

/** ../shared beside the checkout, or TUNEFORGE_SHARED (benchmarks bundled and run elsewhere, on a GPU machine). */
export const SHARED = process.env.TUNEFORGE_SHARED ?? join(import.meta.dir, '../../../shared');
export const STORIES = join(SHARED, 'models/stories260k');

/**
 * Writes config.json, model.safetensors (random, seed 0) and the stories260k tokenizer files into `dir` unless they
 * are there already. The 512-token tokenizer only produces ids below 512, which every vocabulary accepts.
 */
export async function randomModelFolder(dir: string, raw: RawConfig): Promise<string> {
  if (existsSync(join(dir, 'model.safetensors'))) return dir;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw, null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(STORIES, f), join(dir, f));
  await writeSafetensors(join(dir, 'model.safetensors'), randomWeights(parseConfig(raw), 0));
  return dir;
}
