import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTokenizer } from './tokenizer.ts';
import type { Tokenizer } from './tokenizer.ts';

type JsonObject = Record<string, unknown>;

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function readJsonObject(path: string): Promise<JsonObject | undefined> {
  const text = await readText(path);
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${path} must hold a JSON object`);
  return parsed as JsonObject;
}

/**
 * Loads the tokenizer of a model folder (e.g. from `resolveModel`): `tokenizer.json` (required),
 * `tokenizer_config.json` (special tokens, chat_template, ...), `special_tokens_map.json` and
 * `chat_template.jinja` (newer transformers save the template there) when present.
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const tokenizer = await readJsonObject(join(dir, 'tokenizer.json'));
  if (tokenizer === undefined) {
    throw new Error(`${dir} has no tokenizer.json (only "fast" tokenizers in tokenizer.json format are supported)`);
  }
  const [config, specialTokensMap, chatTemplate] = await Promise.all([
    readJsonObject(join(dir, 'tokenizer_config.json')),
    readJsonObject(join(dir, 'special_tokens_map.json')),
    readText(join(dir, 'chat_template.jinja')),
  ]);
  try {
    return createTokenizer({ tokenizer, config, specialTokensMap, chatTemplate });
  } catch (e) {
    throw new Error(`cannot load the tokenizer in ${dir}: ${(e as Error).message}`, { cause: e });
  }
}
