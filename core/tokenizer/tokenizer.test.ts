import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_CHAT_TEMPLATE, loadTokenizer } from './index.ts';
import type { ChatMessage, Tokenizer } from './index.ts';

const REPO_ROOT = resolve(import.meta.dir, '..', '..');
const MODEL_DIR = join(REPO_ROOT, '..', 'shared', 'models', 'stories260k');
const HAVE_MODEL = existsSync(join(MODEL_DIR, 'tokenizer.json'));
if (!HAVE_MODEL) console.warn(`tokenizer tests are skipped: ${MODEL_DIR} not found`);

/** A test that needs ../shared/models/stories260k; its name says so when skipped. */
function modelTest(name: string, fn: () => void | Promise<void>): void {
  test.skipIf(!HAVE_MODEL)(HAVE_MODEL ? name : `${name} [skipped: ${MODEL_DIR} is absent]`, fn);
}

/** Llama-2-chat's template (as in meta-llama/Llama-2-7b-chat-hf, minus the default system prompt). */
const LLAMA2_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
  '{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}' +
  "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
  "{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

const CHAT: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'Tell a story' },
];

let tok: Tokenizer;
let tmp = '';

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'tuneforge-tok-'));
  if (HAVE_MODEL) tok = await loadTokenizer(MODEL_DIR);
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('loadTokenizer on stories260k', () => {
  modelTest('special tokens, ids and vocab', () => {
    expect(tok.vocabSize).toBe(512);
    expect([tok.unkId, tok.bosId, tok.eosId]).toEqual([0, 1, 2]);
    expect(tok.padId).toBe(2); // pad_token is null → falls back to EOS
    expect(tok.padSource).toBe('eos');
    expect(tok.specialIds).toEqual([0, 1, 2]);
    expect(tok.idToToken(1)).toBe('<s>');
    expect(tok.tokenToId('</s>')).toBe(2);
    expect(tok.idToToken(3)).toBe('<0x00>');
    expect(tok.tokenToId('no such token')).toBeUndefined();
  });

  modelTest('encode adds BOS only with addSpecialTokens', () => {
    const ids = tok.encode('Once upon a time');
    expect(ids).toEqual([1, 403, 407, 261, 378]);
    expect(tok.encode('Once upon a time', { addSpecialTokens: false })).toEqual(ids.slice(1));
    expect(tok.encode('')).toEqual([1]);
  });

  modelTest('decode(encode(x)) round-trips, including byte fallback for unicode and emoji', () => {
    const texts = [
      'Once upon a time, there was a little girl named Lily.',
      ' leading space and trailing space ',
      'tabs\tand\nnew  lines\n\n',
      'héllo wörld — “quotes” 日本語 🚀👩‍👩‍👧',
      '12345 + 0.5 = ?!',
    ];
    for (const text of texts) {
      expect(tok.decode(tok.encode(text, { addSpecialTokens: false }))).toBe(text);
      expect(tok.decode(tok.encode(text), { skipSpecialTokens: true })).toBe(text);
    }
    const rocket = tok.encode('🚀', { addSpecialTokens: false });
    expect(rocket.filter((id) => id >= 3 && id <= 258)).toHaveLength(4); // the 4 UTF-8 bytes as <0xNN> tokens
  });

  modelTest('decode keeps or skips special tokens; rejects bad ids', () => {
    const ids = tok.encode('Once upon a time');
    expect(tok.decode(ids)).toBe('<s> Once upon a time');
    expect(tok.decode([...ids, 2], { skipSpecialTokens: true })).toBe('Once upon a time');
    expect(tok.decode([])).toBe('');
    expect(() => tok.decode([512])).toThrow(RangeError);
    expect(() => tok.decode([1.5])).toThrow(RangeError);
  });

  modelTest('no chat template → the documented ChatML default', () => {
    expect(tok.hasChatTemplate).toBe(false);
    const msgs: ChatMessage[] = [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }];
    expect(tok.applyChatTemplate(msgs)).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n');
    expect(tok.applyChatTemplate(msgs.slice(0, 1), { addGenerationPrompt: true })).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(tok.applyChatTemplate(msgs, { template: DEFAULT_CHAT_TEMPLATE })).toBe(tok.applyChatTemplate(msgs));
  });

  modelTest('a given template string renders exactly, with bos_token/eos_token in context', () => {
    expect(tok.applyChatTemplate(CHAT, { template: LLAMA2_TEMPLATE })).toBe(
      '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Tell a story [/INST]',
    );
    expect(() => tok.applyChatTemplate([{ role: 'assistant', content: 'x' }], { template: LLAMA2_TEMPLATE })).toThrow(
      /roles must alternate/,
    );
  });

  modelTest('chat_template from tokenizer_config.json: string or named list', async () => {
    for (const f of ['tokenizer.json', 'special_tokens_map.json']) await copyFile(join(MODEL_DIR, f), join(tmp, f));
    const config = JSON.parse(await readFile(join(MODEL_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;

    await writeFile(join(tmp, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: LLAMA2_TEMPLATE }));
    const withString = await loadTokenizer(tmp);
    expect(withString.hasChatTemplate).toBe(true);
    expect(withString.applyChatTemplate(CHAT.slice(1, 2))).toBe('<s>[INST] Hi [/INST]');

    const named = [
      { name: 'default', template: LLAMA2_TEMPLATE },
      { name: 'plain', template: "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{{ eos_token }}" },
    ];
    await writeFile(join(tmp, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: named }));
    const withList = await loadTokenizer(tmp);
    expect(withList.applyChatTemplate(CHAT.slice(1, 2))).toBe('<s>[INST] Hi [/INST]');
    expect(withList.applyChatTemplate(CHAT.slice(1, 3), { template: 'plain' })).toBe('user: Hi\nassistant: Hello!\n</s>');
  });
});
