/** Files → examples in one call: {@link loadDataset} then {@link tokenizeDataset}. */
import type { Tokenizer } from '../tokenizer/index.ts';
import { loadDataset } from './load.ts';
import type { FileSummary } from './load.ts';
import { DataOptionsSchema, LoadOptionsSchema, TokenizeOptionsSchema, parseOptions } from './options.ts';
import type { DataOptions } from './options.ts';
import type { BadRecord } from './problems.ts';
import { progressLines } from './progress.ts';
import { tokenizeDataset } from './tokenize.ts';
import type { TokenizeStats } from './tokenize.ts';
import type { Example } from './example.ts';

/** The result of {@link prepareDataset}. */
export interface PreparedDataset {
  readonly examples: Example[];
  readonly files: FileSummary[];
  readonly stats: TokenizeStats;
  /** Malformed records skipped while loading, then records that could not be tokenised. */
  readonly warnings: BadRecord[];
}

/** Loads, validates and tokenises files with one options object (load and tokenize options together); `log` gets progress lines. */
export async function prepareDataset(
  paths: string | readonly string[], tok: Tokenizer, options?: DataOptions, log?: (line: string) => void,
): Promise<PreparedDataset> {
  const all = parseOptions(DataOptionsSchema, options, 'prepareDataset');
  const pick = <K extends string>(keys: Record<K, unknown>) =>
    Object.fromEntries(Object.keys(keys).map((k) => [k, (all as Record<string, unknown>)[k]]));
  const loaded = await loadDataset(paths, pick(LoadOptionsSchema.shape));
  const progress = log && progressLines(log, 'data: records tokenised', loaded.records.length);
  const tokenized = tokenizeDataset(loaded.records, tok, pick(TokenizeOptionsSchema.shape), progress);
  return {
    examples: tokenized.examples,
    files: loaded.files,
    stats: tokenized.stats,
    warnings: [...loaded.warnings, ...tokenized.warnings],
  };
}
