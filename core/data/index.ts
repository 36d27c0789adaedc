/**
 * The data pipeline: files → validated records → tokenised examples → padded, shuffled, resumable batches.
 *
 * ```ts
 * import { loadTokenizer } from '../tokenizer/index.ts';
 * import { prepareDataset, splitDataset, BatchStream } from './index.ts';
 *
 * const tok = await loadTokenizer('models/stories260k');
 * const { examples, warnings } = await prepareDataset(['data/alpaca_data_1k.json'], tok, { maxLength: 512 });
 * const { train, eval: held } = splitDataset(examples, { evalFraction: 0.05, seed: 1 });
 * const stream = new BatchStream(train, { batchSize: 16, padId: tok.padId ?? 0, seed: 1, bucketByLength: true });
 * for (let step = 0; step < 1000; step++) {
 *   const { inputIds, labels, attentionMask } = stream.next(); // int64 [B, T]; labels unshifted, -100 = no loss
 *   // ... on checkpoint: save stream.state(); on resume: BatchStream.restore(train, sameOptions, saved)
 * }
 * ```
 */

// ---- options (zod schemas; the TypeScript types are inferred from them) ----

/** Schemas of all options; `XxxOptions` is what callers pass, `ResolvedXxxOptions` has the defaults filled in. */
export {
  DataFormatSchema,
  LoadOptionsSchema,
  TokenizeOptionsSchema,
  DataOptionsSchema,
  BatchOptionsSchema,
  StreamOptionsSchema,
  SplitOptionsSchema,
} from './options.ts';
export type {
  DataFormat,
  LoadOptions,
  ResolvedLoadOptions,
  TokenizeOptions,
  ResolvedTokenizeOptions,
  DataOptions,
  BatchOptions,
  ResolvedBatchOptions,
  StreamOptions,
  ResolvedStreamOptions,
  SplitOptions,
} from './options.ts';

// ---- reading ----

/** Reads JSON / JSONL / .txt / .tsv files into validated records; refuses when too many are malformed. */
export { loadDataset } from './load.ts';
export type { LoadedDataset, FileSummary } from './load.ts';
/** Loads and tokenises in one call. */
export { prepareDataset } from './prepare.ts';
export type { PreparedDataset } from './prepare.ts';
/** Record types (inferred from the per-format zod schemas), format detection and validation of one record. */
export { RECORD_SCHEMAS, detectFormat, normalizeRecord } from './records.ts';
export type { DataRecord, RecordOfKind } from './records.ts';
/** Malformed-record reports and the error thrown above maxBadFraction. */
export { DatasetError, formatBadRecord } from './problems.ts';
export type { BadRecord, RecordSource } from './problems.ts';
/** Low-level streaming readers (JSON array elements, JSON Lines) and text/TSV readers. */
export { readJsonArray, readJsonFile, readJsonl } from './json-stream.ts';
export type { RawItem } from './json-stream.ts';
export { readTextDocuments, readTsv, END_OF_TEXT } from './text-files.ts';

// ---- tokenisation ----

/** A training example: unshifted labels, -100 (IGNORE_INDEX) where there is no loss. */
export { IGNORE_INDEX, trainedCount } from './example.ts';
export type { DraftExample, Example } from './example.ts';
export { compactExample } from './example.ts';
/** Records → examples (prompt templates, chat loss masks, packing, truncation). */
export { tokenizeDataset } from './tokenize.ts';
export type { TokenizedDataset, TokenizeStats } from './tokenize.ts';
/** One chat → ids, labels and per-turn token spans (assistant turns masked in one pass). */
export { encodeChat, endOfTurnText } from './chat-mask.ts';
export type { ChatEncoding, EncodeChatOptions, TurnSpan } from './chat-mask.ts';
/** Documents → full sequences of seqLen tokens (continued pre-training). */
export { packDocuments } from './pack.ts';
export type { Packed } from './pack.ts';
/** The Alpaca prompt templates and placeholder filling. */
export { ALPACA_PROMPT, ALPACA_PROMPT_NO_INPUT, fillTemplate, renderInstructionPrompt } from './templates.ts';
/** Truncation policies on whole sequences and on prompt + response pairs. */
export { truncateSequence, truncatePair } from './truncate.ts';
export type { Truncation } from './truncate.ts';
/** Classification records ({text, label}) → ids + label. */
export { tokenizeClassification } from './classification.ts';
export type { ClassificationExample } from './classification.ts';
/** Encoding with BOS as the tokenizer adds it; character → token offsets. */
export { encodeText, addsBos, TokenOffsets } from './encode.ts';

// ---- batching ----

/** One epoch of padded int64 batches; collation; the epoch plan; the share of padding. */
export { makeBatches, collate, planEpoch, epochSeed, padFraction } from './batch.ts';
export type { Batch } from './batch.ts';
/** Endless epoch-aware (or random-draw) batches with exact save/restore. */
export { BatchStream } from './stream.ts';
export type { BatchStreamState, StreamPosition } from './stream.ts';
/** Seeded train/eval split. */
export { heldOutIndices, splitDataset } from './split.ts';
/** Seeded PRNG (mulberry32), seed mixing, shuffles. */
export { mulberry32, mixSeed, permutation, shuffleInPlace, randomInt } from './rng.ts';
export type { Random } from './rng.ts';
