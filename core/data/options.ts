/**
 * Options of the data pipeline, as zod schemas. Every TypeScript options type is inferred from these schemas:
 * `XxxOptions` (z.input, what callers pass, defaults optional) and `ResolvedXxxOptions` (z.infer, defaults applied).
 */
import { z } from 'zod';

/** Record formats a file may hold. */
export const DataFormatSchema = z
  .enum(['alpaca', 'sharegpt', 'openai', 'prompt-completion', 'text', 'classification'])
  .describe(
    'alpaca: {instruction, input?, output}; sharegpt: {conversations: [{from, value}]}; openai: {messages: [{role, content}]}; ' +
      'prompt-completion: {prompt, completion}; text: {text} or a .txt file; classification: {text|sentence, label} or a .tsv file',
  );
/** A record format name. */
export type DataFormat = z.infer<typeof DataFormatSchema>;

const maxBadFraction = z
  .number()
  .min(0)
  .max(1)
  .default(0.01)
  .describe('refuse the dataset (throw) when more than this share of records is malformed; below it, problems are warnings');

/** How files are read and records validated ({@link loadDataset}). */
export const LoadOptionsSchema = z.object({
  format: z
    .union([z.literal('auto'), DataFormatSchema])
    .default('auto')
    .describe('record format of every file; "auto" detects it per file from the extension and the keys of its first records'),
  textSplit: z
    .enum(['auto', 'blank-line', 'endoftext', 'line', 'file'])
    .default('auto')
    .describe(
      '.txt files: how the text is cut into documents. blank-line: on empty lines; endoftext: on "<|endoftext|>"; ' +
        'line: one document per line; file: the whole file is one document; auto: endoftext if the file contains the marker, else blank-line',
    ),
  maxBadFraction,
});
/** Options of loadDataset, as passed (defaults optional). */
export type LoadOptions = z.input<typeof LoadOptionsSchema>;
/** LoadOptions with defaults applied. */
export type ResolvedLoadOptions = z.infer<typeof LoadOptionsSchema>;

/** How records become training examples ({@link tokenizeDataset}). */
export const TokenizeOptionsSchema = z.object({
  maxLength: z.number().int().min(2).default(2048).describe('longest example in tokens; longer ones are truncated per `truncation`'),
  truncation: z
    .enum(['right', 'left', 'drop'])
    .default('right')
    .describe(
      'right: cut the end; left: cut the beginning (a leading BOS is kept); drop: drop over-long examples. ' +
        'For prompt+response examples the prompt is cut first (see truncate.ts)',
    ),
  promptTemplate: z
    .string()
    .default('alpaca')
    .refine((t) => t === 'alpaca' || t === 'chat' || t.includes('{instruction}') || t.includes('{prompt}'), {
      message: 'promptTemplate must be "alpaca", "chat" or a string with an {instruction} (or {prompt}) placeholder',
    })
    .describe(
      'prompt of instruction and prompt/completion records: "alpaca" (the Stanford Alpaca template; prompt/completion records ' +
        'use their prompt verbatim), "chat" (one user turn through the tokenizer chat template), or a custom string with ' +
        '{instruction} and {input} placeholders ({prompt} is an alias of {instruction})',
    ),
  promptTemplateNoInput: z
    .string()
    .optional()
    .describe('custom template used when the record has an empty input (default: promptTemplate with {input} empty)'),
  trainOnPrompt: z.boolean().default(false).describe('also train on prompt tokens (and, for chats, on every token)'),
  trainOn: z
    .enum(['all-assistant', 'last-assistant'])
    .default('all-assistant')
    .describe('chats: train on every assistant turn, or only on the last one'),
  chatTemplate: z
    .string()
    .optional()
    .describe("name of one of the tokenizer's chat templates or a Jinja template string; default: the tokenizer's own"),
  addEos: z.boolean().default(true).describe('append EOS after the response of instruction and prompt/completion records'),
  packText: z
    .boolean()
    .default(true)
    .describe('text records: pack documents (BOS as the tokenizer adds it, EOS after each) into full sequences of seqLen tokens'),
  seqLen: z.number().int().min(2).optional().describe('length of packed text sequences; default maxLength'),
  keepPartialPack: z.boolean().default(false).describe('keep the last, shorter packed sequence instead of dropping it'),
  maxBadFraction,
});
/** Options of tokenizeDataset, as passed (defaults optional). */
export type TokenizeOptions = z.input<typeof TokenizeOptionsSchema>;
/** TokenizeOptions with defaults applied. */
export type ResolvedTokenizeOptions = z.infer<typeof TokenizeOptionsSchema>;

/** Loading and tokenising in one call ({@link prepareDataset}). */
export const DataOptionsSchema = LoadOptionsSchema.extend(TokenizeOptionsSchema.shape);
/** Options of prepareDataset: LoadOptions and TokenizeOptions together. */
export type DataOptions = z.input<typeof DataOptionsSchema>;

/** Batches of padded examples ({@link makeBatches}). */
export const BatchOptionsSchema = z.object({
  batchSize: z.number().int().positive().describe('examples per batch'),
  padId: z.number().int().nonnegative().describe('token id written into padded positions of inputIds (labels get -100)'),
  seed: z.number().int().default(0).describe('seed of the shuffling; same seed, same order, on every run'),
  shuffle: z.boolean().default(true).describe('shuffle examples (and, with bucketing, batch order)'),
  bucketByLength: z
    .boolean()
    .default(false)
    .describe('sort examples by length within windows of bucketWindow batches, then shuffle the batches: less padding'),
  bucketWindow: z.number().int().positive().default(50).describe('window size of length bucketing, in batches'),
  padTo: z
    .union([z.literal('longest'), z.number().int().positive()])
    .default('longest')
    .describe('batch length T: the longest example of the batch, or a fixed number of tokens'),
  multipleOf: z.number().int().positive().default(1).describe('round T up to a multiple of this'),
  dropLast: z.boolean().default(false).describe('drop the last, smaller batch of an epoch'),
});
/** Options of makeBatches, as passed (defaults optional). */
export type BatchOptions = z.input<typeof BatchOptionsSchema>;
/** BatchOptions with defaults applied. */
export type ResolvedBatchOptions = z.infer<typeof BatchOptionsSchema>;

/** A resumable stream of batches ({@link BatchStream}). */
export const StreamOptionsSchema = BatchOptionsSchema.extend({
  drawRandom: z
    .boolean()
    .default(false)
    .describe('each step draws batchSize examples at random, with replacement, instead of walking shuffled epochs'),
});
/** Options of BatchStream, as passed (defaults optional). */
export type StreamOptions = z.input<typeof StreamOptionsSchema>;
/** StreamOptions with defaults applied. */
export type ResolvedStreamOptions = z.infer<typeof StreamOptionsSchema>;

/** Train/eval split ({@link splitDataset}). */
export const SplitOptionsSchema = z
  .object({
    evalFraction: z.number().gt(0).lt(1).optional().describe('share of examples held out for evaluation'),
    evalCount: z.number().int().nonnegative().optional().describe('number of examples held out (instead of evalFraction)'),
    seed: z.number().int().default(0).describe('seed of the random choice of held-out examples'),
  })
  .refine((o) => (o.evalFraction === undefined) !== (o.evalCount === undefined), {
    message: 'give exactly one of evalFraction and evalCount',
  });
/** Options of splitDataset. */
export type SplitOptions = z.input<typeof SplitOptionsSchema>;

/** Parses options with a schema; errors name the function and every bad field. */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown, where: string): z.infer<S> {
  const r = schema.safeParse(value ?? {});
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.length > 0 ? i.path.join('.') : '(options)'}: ${i.message}`);
    throw new Error(`${where}: invalid options\n${lines.join('\n')}`);
  }
  return r.data;
}
