/** Plain-text (.txt) documents and TSV classification files. */
import { readFile } from 'node:fs/promises';
import type { ResolvedLoadOptions } from './options.ts';
import type { RawItem } from './json-stream.ts';

/** The separator between documents of a .txt file of TinyStories V2 and GPT-2 style corpora. */
export const END_OF_TEXT = '<|endoftext|>';

const SEPARATORS: Record<Exclude<ResolvedLoadOptions['textSplit'], 'auto' | 'file'>, RegExp> = {
  'blank-line': /\n[ \t\r]*\n/g,
  endoftext: /<\|endoftext\|>/g,
  line: /\n/g,
};

async function readUtf8(path: string): Promise<string> {
  const text = await readFile(path, 'utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * The documents of a .txt file as `{text}` items (surrounding whitespace trimmed, empty documents skipped), with the
 * line each starts on. `auto` splits on `<|endoftext|>` when the file contains it, else on blank lines.
 */
export async function readTextDocuments(path: string, split: ResolvedLoadOptions['textSplit']): Promise<RawItem[]> {
  const text = await readUtf8(path);
  const mode = split === 'auto' ? (text.includes(END_OF_TEXT) ? 'endoftext' : 'blank-line') : split;
  const items: RawItem[] = [];
  let line = 1;
  let counted = 0; // text[0..counted) has been scanned for newlines
  const lineAt = (pos: number): number => {
    for (let i = counted; i < pos; i++) if (text.charCodeAt(i) === 10) line++;
    counted = Math.max(counted, pos);
    return line;
  };
  const add = (from: number, to: number): void => {
    const segment = text.slice(from, to);
    const lead = segment.length - segment.trimStart().length;
    const doc = segment.trim();
    if (doc !== '') items.push({ line: lineAt(from + lead), index: items.length, value: { text: doc } });
  };
  if (mode === 'file') {
    add(0, text.length);
    return items;
  }
  const re = new RegExp(SEPARATORS[mode].source, 'g');
  let from = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    add(from, m.index);
    from = m.index + m[0].length;
  }
  add(from, text.length);
  return items;
}

/**
 * Rows of a tab-separated classification file with a header row naming a `sentence` (or `text`) column and,
 * optionally, a `label` column (SST-2 / GLUE layout). Items are `{text, label}`: the text exactly as in the file,
 * `label` (trimmed) a number when it reads as one, and null when the file has no label column (e.g. an unlabelled
 * test split). Rows with a wrong number of columns become error items.
 */
export async function readTsv(path: string): Promise<RawItem[]> {
  const lines = (await readUtf8(path)).split('\n');
  const header = (lines[0] ?? '').replace(/\r$/, '').split('\t');
  const textCol = header.findIndex((h) => h === 'sentence' || h === 'text');
  const labelCol = header.indexOf('label');
  if (textCol < 0) {
    throw new Error(`${path}: the TSV header must name a "sentence" or "text" column (found: ${header.join(', ')})`);
  }
  const items: RawItem[] = [];
  for (let i = 1; i < lines.length; i++) {
    const row = (lines[i] as string).replace(/\r$/, '');
    if (row.trim() === '') continue;
    const at = { line: i + 1, index: items.length };
    const cells = row.split('\t');
    if (cells.length !== header.length) {
      items.push({ ...at, error: `expected ${header.length} tab-separated columns, found ${cells.length}` });
      continue;
    }
    const raw = labelCol < 0 ? null : (cells[labelCol] as string).trim();
    const label = raw === null ? null : raw !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
    // The text verbatim, as pandas and Hugging Face datasets read it (GLUE's sentences end in a space; editing the
    // text would change the prompt a model is trained and scored on).
    items.push({ ...at, value: { text: cells[textCol] as string, label } });
  }
  return items;
}
