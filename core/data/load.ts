/**
 * Loading datasets: files → validated records. The reader is picked by extension (.json: an array, one object,
 * or JSON Lines; .jsonl/.ndjson; .txt/.md; .tsv), the record format is detected per file (or forced), and
 * malformed records are collected with file, line, record index and reason. Too many of them refuse the dataset.
 */
import { extname } from 'node:path';
import { readJsonFile, readJsonl } from './json-stream.ts';
import type { RawItem } from './json-stream.ts';
import { LoadOptionsSchema, parseOptions } from './options.ts';
import type { DataFormat, LoadOptions, ResolvedLoadOptions } from './options.ts';
import { enforceBadFraction } from './problems.ts';
import type { BadRecord } from './problems.ts';
import { detectFormat, normalizeRecord } from './records.ts';
import type { DataRecord } from './records.ts';
import { readTextDocuments, readTsv } from './text-files.ts';

/** What was read from one file. */
export interface FileSummary {
  readonly file: string;
  /** The detected or forced format; 'unknown' when no record of the file could be parsed. */
  readonly format: DataFormat | 'unknown';
  /** Good records. */
  readonly records: number;
  /** Malformed records. */
  readonly bad: number;
}

/** The result of {@link loadDataset}. */
export interface LoadedDataset {
  readonly records: DataRecord[];
  readonly files: FileSummary[];
  /** Malformed records that were skipped (their share was within maxBadFraction). */
  readonly warnings: BadRecord[];
  /** Records seen, good and bad. */
  readonly total: number;
}

/** How many leading items are looked at to detect a file's format. */
const DETECT_WINDOW = 100;

async function* rawItems(file: string, options: ResolvedLoadOptions): AsyncGenerator<RawItem> {
  const ext = extname(file).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') yield* readJsonl(file);
  else if (ext === '.json') yield* readJsonFile(file);
  else if (ext === '.txt' || ext === '.md') yield* await readTextDocuments(file, options.textSplit);
  else if (ext === '.tsv') yield* await readTsv(file);
  else throw new Error(`${file}: unsupported file type "${ext}" (expected .json, .jsonl, .ndjson, .txt, .md or .tsv)`);
}

function formatFromExtension(file: string): DataFormat | undefined {
  const ext = extname(file).toLowerCase();
  return ext === '.txt' || ext === '.md' ? 'text' : ext === '.tsv' ? 'classification' : undefined;
}

/** Reads one file; good records and problems are appended to the given arrays. */
async function loadFile(file: string, options: ResolvedLoadOptions, records: DataRecord[], problems: BadRecord[]): Promise<FileSummary> {
  let format: DataFormat | undefined = options.format === 'auto' ? formatFromExtension(file) : options.format;
  let good = 0;
  let bad = 0;
  const waiting: RawItem[] = []; // items read before the format is known
  const keys = new Set<string>();
  let valued = 0; // waiting items that parsed
  const take = (item: RawItem, f: DataFormat): void => {
    const source = { file, line: item.line, index: item.index };
    const r = 'error' in item ? item.error : normalizeRecord(f, item.value, source);
    if (typeof r === 'string') {
      problems.push({ ...source, reason: r });
      bad++;
    } else {
      records.push(r);
      good++;
    }
  };
  for await (const item of rawItems(file, options)) {
    if (format !== undefined) {
      take(item, format);
      continue;
    }
    waiting.push(item);
    if ('value' in item) {
      valued++;
      format = detectFormat(item.value);
      if (typeof item.value === 'object' && item.value !== null) for (const k of Object.keys(item.value)) keys.add(k);
    }
    if (format !== undefined) {
      for (const w of waiting.splice(0)) take(w, format);
    } else if (valued >= DETECT_WINDOW) break;
  }
  if (format === undefined) {
    if (waiting.every((w) => 'error' in w)) {
      // Nothing parsed at all: every item is a problem (an empty file adds none, and the total check reports it).
      for (const w of waiting) take(w, 'text');
      return { file, format: 'unknown', records: 0, bad };
    }
    throw new Error(
      `${file}: cannot detect the record format from the first ${valued} records (keys seen: ` +
        `${[...keys].join(', ') || 'none'}); expected instruction/output, conversations, messages, prompt/completion ` +
        'or text, or pass the format option',
    );
  }
  return { file, format, records: good, bad };
}

/**
 * Reads and validates the records of one or more files.
 *
 * Throws a {@link DatasetError} listing the first problems when more than `maxBadFraction` of all records (over all
 * files) are malformed; otherwise the malformed ones are skipped and returned as `warnings`.
 */
export async function loadDataset(paths: string | readonly string[], options?: LoadOptions): Promise<LoadedDataset> {
  const opts = parseOptions(LoadOptionsSchema, options, 'loadDataset');
  const files = typeof paths === 'string' ? [paths] : [...paths];
  const records: DataRecord[] = [];
  const problems: BadRecord[] = [];
  const summaries: FileSummary[] = [];
  for (const f of files) summaries.push(await loadFile(f, opts, records, problems));
  const total = records.length + problems.length;
  enforceBadFraction(problems, total, opts.maxBadFraction, `loadDataset(${files.join(', ')})`);
  return { records, files: summaries, warnings: problems, total };
}
