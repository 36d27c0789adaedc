/**
 * Streaming readers for JSON Lines and JSON array files. Neither holds the whole file as one string: JSONL is read
 * line by line; a JSON array is cut into its top-level elements by a small scanner (tracking brackets and strings)
 * and each element is parsed on its own, so one malformed record is reported with its line and index instead of
 * failing the whole file.
 */
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';

/** One raw item of a file: a parsed value, or the reason it could not be parsed. */
export type RawItem =
  | { readonly line: number; readonly index: number; readonly value: unknown }
  | { readonly line: number; readonly index: number; readonly error: string };

const CHUNK = 1 << 20;

/** Text chunks of a UTF-8 file (a UTF-8 BOM is dropped). */
async function* chunks(path: string): AsyncGenerator<string> {
  let first = true;
  for await (const c of createReadStream(path, { encoding: 'utf8', highWaterMark: CHUNK })) {
    let s = c as string;
    if (first && s.charCodeAt(0) === 0xfeff) s = s.slice(1);
    first = false;
    yield s;
  }
}

/** Each non-blank line of a JSON Lines file, parsed. Blank lines are skipped and not counted as records. */
export async function* readJsonl(path: string): AsyncGenerator<RawItem> {
  let line = 0;
  let index = 0;
  let rest = '';
  const parse = (text: string): RawItem | undefined => {
    line++;
    if (text.trim() === '') return undefined;
    const at = { line, index: index++ };
    try {
      return { ...at, value: JSON.parse(text) };
    } catch (e) {
      return { ...at, error: `invalid JSON: ${(e as Error).message}` };
    }
  };
  for await (const chunk of chunks(path)) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const p of parts) {
      const item = parse(p);
      if (item) yield item;
    }
  }
  const item = parse(rest);
  if (item) yield item;
}

/**
 * A .json file: a JSON array (its elements), else — when it starts with '{' — one JSON object (a single record),
 * or, when the whole file does not parse as one, JSON Lines (many files named .json are).
 */
export async function* readJsonFile(path: string): AsyncGenerator<RawItem> {
  if ((await firstChar(path)) !== '{') {
    yield* readJsonArray(path);
    return;
  }
  let whole: unknown;
  try {
    whole = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    yield* readJsonl(path);
    return;
  }
  yield { line: 1, index: 0, value: whole };
}

/** The first non-whitespace character of a file ('' for an empty file). */
async function firstChar(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4096);
    for (let pos = 0; ; ) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return '';
      const m = /[^\s\uFEFF]/.exec(buf.toString('utf8', 0, bytesRead));
      if (m) return m[0];
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

const OPEN_BRACE = 123, CLOSE_BRACE = 125, OPEN_BRACKET = 91, CLOSE_BRACKET = 93, QUOTE = 34, BACKSLASH = 92;
const COMMA = 44, NEWLINE = 10;

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}

/**
 * The elements of a top-level JSON array, parsed one by one. Reports, as error items, elements that do not parse,
 * content after the closing bracket and a file that ends inside the array.
 */
export async function* readJsonArray(path: string): AsyncGenerator<RawItem> {
  let state: 'start' | 'array' | 'done' | 'trailing' = 'start';
  let depth = 0; // bracket depth inside the current element
  let inString = false;
  let escaped = false;
  let inElement = false;
  let pending = ''; // text of the current element from earlier chunks
  let elemLine = 0;
  let index = 0;
  let line = 1;
  const finish = (text: string): RawItem => {
    const at = { line: elemLine, index: index++ };
    try {
      return { ...at, value: JSON.parse(text) };
    } catch (e) {
      return { ...at, error: `invalid JSON: ${(e as Error).message}` };
    }
  };
  for await (const chunk of chunks(path)) {
    if (state === 'trailing') continue;
    const out: RawItem[] = [];
    let start = 0; // start of the current element within this chunk
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c === NEWLINE) line++;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === BACKSLASH) escaped = true;
        else if (c === QUOTE) inString = false;
        continue;
      }
      if (state === 'start') {
        if (isSpace(c)) continue;
        if (c !== OPEN_BRACKET) throw new Error(`${path}:${line}: expected a JSON array ('['), found '${chunk[i]}'`);
        state = 'array';
        continue;
      }
      if (state === 'done') {
        if (!isSpace(c)) {
          out.push({ line, index, error: 'unexpected content after the closing bracket of the array' });
          state = 'trailing';
          break;
        }
        continue;
      }
      if (!inElement) {
        if (isSpace(c) || c === COMMA) continue;
        if (c === CLOSE_BRACKET) {
          state = 'done';
          continue;
        }
        inElement = true;
        elemLine = line;
        start = i;
        pending = '';
      }
      if (c === QUOTE) inString = true;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
      else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && depth > 0) depth--;
      else if (depth === 0 && (c === COMMA || c === CLOSE_BRACKET)) {
        out.push(finish(pending + chunk.slice(start, i)));
        inElement = false;
        pending = '';
        if (c === CLOSE_BRACKET) state = 'done';
      }
    }
    if (inElement) {
      pending += chunk.slice(start);
    }
    yield* out;
  }
  if (state === 'start') throw new Error(`${path}: empty file, expected a JSON array`);
  if (state === 'array') {
    yield { line: inElement ? elemLine : line, index, error: 'unexpected end of file inside the JSON array' };
  }
}
