import { beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { loadTokenizer } from '../tokenizer/index.ts';
import type { ChatMessage, Tokenizer } from '../tokenizer/index.ts';
import {
  ALPACA_PROMPT_NO_INPUT, IGNORE_INDEX, encodeChat, encodeText, loadDataset, renderInstructionPrompt, tokenizeDataset,
  truncatePair, truncateSequence,
} from './index.ts';
import type { DataRecord, DraftExample, Example, RecordOfKind } from './index.ts';
import { progressLines } from './progress.ts';
import { DATA, MODEL_DIR, runs, sharedTest } from './test-helpers.ts';

const TOKENIZER = join(MODEL_DIR, 'tokenizer.json');
const ALPACA = join(DATA, 'alpaca', 'alpaca_data_1k.json');
const CHAT = join(DATA, 'chat', 'dummy_conversation.json');
const STORIES_TXT = join(DATA, 'tinystories', 'tinystories_v2_sample.txt');
const STORIES_JSONL = join(DATA, 'tinystories', 'stories.jsonl');

/** Llama-2-chat's template (meta-llama/Llama-2-7b-chat-hf, without the default system prompt). */
const LLAMA2_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
  '{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}' +
  "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
  "{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

/** ChatML written out as a template string (with a generation prompt). */
const CHATML_TEMPLATE =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** A template whose prefix renders are not prefixes of the full render: the final assistant header differs. */
const FINAL_HEADER_TEMPLATE =
  "{% for m in messages %}{% if loop.last and m.role == 'assistant' %}<|im_start|>assistant (final)\n" +
  '{% else %}<|im_start|>{{ m.role }}\n{% endif %}{{ m.content }}<|im_end|>\n{% endfor %}' +
  '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';

let tok: Tokenizer;
let chats: RecordOfKind<'chat'>[] = [];
let alpaca: RecordOfKind<'instruction'>[] = [];

beforeAll(async () => {
  if (!(await Bun.file(TOKENIZER).exists())) return;
  tok = await loadTokenizer(MODEL_DIR);
  if (await Bun.file(CHAT).exists()) chats = (await loadDataset(CHAT)).records.filter((r): r is RecordOfKind<'chat'> => r.kind === 'chat');
  if (await Bun.file(ALPACA).exists()) {
    alpaca = (await loadDataset(ALPACA)).records.filter((r): r is RecordOfKind<'instruction'> => r.kind === 'instruction');
  }
});

/** Prints one readable line per run of trained / masked tokens within each turn. */
function printMask(title: string, ids: readonly number[], labels: readonly number[], turns: { role: string; start: number; end: number }[]): void {
  const lines = [`--- ${title}`];
  const first = turns[0]?.start ?? 0;
  if (first > 0) lines.push(`  ${'(start)'.padEnd(10)} [mask]  ${JSON.stringify(tok.decode(ids.slice(0, first)))}`);
  for (const t of turns) {
    for (const r of runs(labels, t.start, t.end)) {
      lines.push(`  ${t.role.padEnd(10)} ${r.trained ? '[train]' : '[mask] '} ${JSON.stringify(tok.decode(ids.slice(r.start, r.end)))}`);
    }
  }
  console.log(lines.join('\n'));
}

/**
 * Checks a chat's mask without trusting the turn spans: the trained runs of tokens, decoded, are exactly the
 * assistant contents followed by `endOfTurn`, in order, and every user/system content lies in masked text.
 */
/** An example's ids as plain arrays (datasets hold them as Int32Array). */
const plain = (ex: Example | undefined): DraftExample => ({ inputIds: [...ex!.inputIds], labels: [...ex!.labels] });

function checkChatMask(messages: readonly ChatMessage[], ex: DraftExample, endOfTurn: string, selected: 'all' | 'last'): void {
  for (let t = 0; t < ex.labels.length; t++) expect([IGNORE_INDEX, ex.inputIds[t]]).toContain(ex.labels[t]);
  const all = runs(ex.labels);
  const trained = all.filter((r) => r.trained).map((r) => tok.decode(ex.inputIds.slice(r.start, r.end)));
  const masked = all.filter((r) => !r.trained).map((r) => tok.decode(ex.inputIds.slice(r.start, r.end))).join('');
  const assistant = messages.filter((m) => m.role === 'assistant').map((m) => m.content.trim() + endOfTurn);
  expect(trained).toEqual(selected === 'all' ? assistant : assistant.slice(-1));
  for (const m of messages) if (m.role !== 'assistant') expect(masked).toContain(m.content.trim());
  if (selected === 'all') for (const m of messages) if (m.role === 'assistant') expect(masked).not.toContain(m.content.trim());
}

const needChat = [TOKENIZER, CHAT];

describe('chat loss masks', () => {
  sharedTest('multi-turn chat from dummy_conversation.json (default ChatML template): every assistant turn trained', needChat, () => {
    expect(tok.hasChatTemplate).toBe(false); // → DEFAULT_CHAT_TEMPLATE (ChatML)
    const chat = chats.find((c) => c.messages.length === 6) as RecordOfKind<'chat'>;
    const enc = encodeChat(tok, chat.messages, { trainOn: 'all-assistant' });
    printMask(`${chat.source.file} record ${chat.source.index}, default template`, enc.inputIds, enc.labels, enc.turns);
    expect(enc.method).toBe('prefix');
    checkChatMask(chat.messages, enc, '<|im_end|>\n', 'all');
    // The generation header of each assistant turn is masked, its content and <|im_end|> trained.
    for (const t of enc.turns.filter((x) => x.role === 'assistant')) {
      expect(tok.decode(enc.inputIds.slice(t.start, t.contentStart))).toBe('<|im_start|>assistant\n');
      expect(enc.labels.slice(t.start, t.contentStart).every((l) => l === IGNORE_INDEX)).toBe(true);
      expect(enc.labels.slice(t.contentStart, t.end).every((l) => l !== IGNORE_INDEX)).toBe(true);
    }
    for (const t of enc.turns.filter((x) => x.role !== 'assistant')) {
      expect(enc.labels.slice(t.start, t.end).every((l) => l === IGNORE_INDEX)).toBe(true);
    }
  });

  sharedTest('the first 60 chats through tokenizeDataset; last-assistant trains only the final turn', needChat, () => {
    const some = chats.slice(0, 60);
    const all = tokenizeDataset(some, tok, { maxLength: 512 });
    expect(all.stats).toMatchObject({ examples: 60, chatFallbacks: 0, droppedResponseTruncated: 0 });
    some.forEach((c, i) => checkChatMask(c.messages, plain(all.examples[i]), '<|im_end|>\n', 'all'));
    const last = tokenizeDataset(some, tok, { maxLength: 512, trainOn: 'last-assistant' });
    some.forEach((c, i) => checkChatMask(c.messages, plain(last.examples[i]), '<|im_end|>\n', 'last'));
    const everything = tokenizeDataset(some.slice(0, 3), tok, { trainOnPrompt: true });
    for (const ex of everything.examples) expect(ex.labels).toEqual(ex.inputIds);
  });

  sharedTest('explicit Llama-2 and ChatML template strings, with a system message', needChat, () => {
    const chat = chats.find((c) => c.messages.length === 4) as RecordOfKind<'chat'>;
    const messages = [{ role: 'system' as const, content: 'You are a helpful assistant.' }, ...chat.messages];
    const llama = encodeChat(tok, messages, { template: LLAMA2_TEMPLATE, trainOn: 'all-assistant' });
    printMask('Llama-2 template', llama.inputIds, llama.labels, llama.turns);
    expect(llama.method).toBe('prefix');
    expect(llama.inputIds.filter((id) => id === tok.bosId)).toHaveLength(2); // one <s> per [INST], none added twice
    checkChatMask(messages, llama, ' </s>', 'all');
    const rec: DataRecord = { kind: 'chat', messages, source: chat.source };
    const [viaOption] = tokenizeDataset([rec], tok, { chatTemplate: CHATML_TEMPLATE }).examples;
    checkChatMask(messages, plain(viaOption), '<|im_end|>\n', 'all');
    expect(plain(tokenizeDataset([rec], tok, { chatTemplate: LLAMA2_TEMPLATE }).examples[0])).toEqual({ inputIds: llama.inputIds, labels: llama.labels });
  });

  sharedTest('a template whose prefixes are not prefixes of the full render: character-offset fallback', needChat, () => {
    const chat = chats.find((c) => c.messages.length === 6) as RecordOfKind<'chat'>;
    const enc = encodeChat(tok, chat.messages, { template: FINAL_HEADER_TEMPLATE, trainOn: 'all-assistant' });
    printMask('non-prefix template (fallback)', enc.inputIds, enc.labels, enc.turns);
    expect(enc.method).toBe('search');
    checkChatMask(chat.messages, enc, '<|im_end|>\n', 'all');
    const lastTurn = enc.turns[enc.turns.length - 1];
    expect(tok.decode(enc.inputIds.slice(lastTurn?.start, lastTurn?.contentStart))).toBe('<|im_start|>assistant (final)\n');
  });
});

describe('instruction records (Alpaca)', () => {
  sharedTest('progress: the callback sees every record index in order; progressLines prints share and time left', [TOKENIZER, ALPACA], () => {
    const seen: number[] = [];
    tokenizeDataset(alpaca.slice(0, 30), tok, {}, (done) => seen.push(done));
    expect(seen).toEqual([...Array(30).keys()]);
    const lines: string[] = [];
    const progress = progressLines((l) => lines.push(l), 'data: records tokenised', 40_000, 0);
    progress(0); // nothing done yet: no line
    progress(10_000);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^data: records tokenised: 10,000 \/ 40,000 \(25%, \d+ s, about \d+ s left\)$/);
  });
  sharedTest('loss covers exactly the response + EOS', [TOKENIZER, ALPACA], () => {
    const some = alpaca.slice(0, 200);
    const { examples, stats } = tokenizeDataset(some, tok, { maxLength: 4096 }); // nothing truncated
    expect(stats.examples).toBe(200);
    some.forEach((r, i) => {
      const ex = plain(examples[i]);
      const [masked, trained, ...more] = runs(ex.labels);
      expect(more).toHaveLength(0);
      expect(masked?.trained).toBe(false);
      expect(trained?.end).toBe(ex.inputIds.length);
      expect(ex.inputIds[ex.inputIds.length - 1]).toBe(tok.eosId as number);
      expect(ex.inputIds[0]).toBe(tok.bosId as number);
      expect(tok.decode(ex.inputIds.slice(trained?.start, -1))).toBe(r.output);
      expect(tok.decode(ex.inputIds.slice(1, masked?.end))).toBe(renderInstructionPrompt('alpaca', undefined, r.instruction, r.input));
    });
    const ex = plain(examples[0]);
    console.log(runs(ex.labels).map((r) => `${r.trained ? '[train]' : '[mask] '} ${JSON.stringify(tok.decode(ex.inputIds.slice(r.start, r.end)))}`).join('\n'));
    expect(tok.decode(ex.inputIds.slice(1, runs(ex.labels)[0]?.end))).toBe(ALPACA_PROMPT_NO_INPUT.replace('{instruction}', some[0]?.instruction ?? ''));
  });

  sharedTest('custom template, "chat" template, trainOnPrompt, and prompt/completion records', [TOKENIZER, ALPACA], () => {
    const r = alpaca.find((x) => x.input !== '') as RecordOfKind<'instruction'>;
    const [custom] = tokenizeDataset([r], tok, { promptTemplate: 'Q: {instruction} [{input}]\nA: ' }).examples;
    const c = plain(custom);
    const [m, t] = runs(c.labels);
    expect(tok.decode(c.inputIds.slice(1, m?.end))).toBe(`Q: ${r.instruction} [${r.input}]\nA: `);
    expect(tok.decode(c.inputIds.slice(t?.start, -1))).toBe(r.output);
    const [viaChat] = tokenizeDataset([r], tok, { promptTemplate: 'chat' }).examples;
    checkChatMask([{ role: 'user', content: `${r.instruction}\n\n${r.input}` }, { role: 'assistant', content: r.output }], plain(viaChat), '<|im_end|>\n', 'all');
    const [all] = tokenizeDataset([r], tok, { trainOnPrompt: true }).examples;
    expect(all!.labels).toEqual(all!.inputIds);
    const pc: DataRecord = { kind: 'prompt-completion', prompt: 'Once upon a time', completion: ' there was a cat.', source: r.source };
    const [p] = tokenizeDataset([pc], tok).examples;
    const pp = plain(p);
    expect(tok.decode(pp.inputIds.filter((_, i) => pp.labels[i] !== IGNORE_INDEX))).toBe('there was a cat.</s>'); // the decoder strips one leading space
    expect(() => tokenizeDataset([r], tok, { promptTemplate: 'no placeholder' })).toThrow(/promptTemplate/);
  });
});

describe('plain text packing', () => {
  sharedTest('tinystories_v2_sample.txt → full sequences, BOS at each document start, documents joined with EOS', [TOKENIZER, STORIES_TXT], async () => {
    const { records } = await loadDataset(STORIES_TXT);
    const { examples, stats } = tokenizeDataset(records, tok, { maxLength: 128 });
    const docs = records.map((r) => [...encodeText(tok, (r as RecordOfKind<'text'>).text), tok.eosId as number]);
    const stream = docs.flat();
    expect(stats.packedTokens).toBe(stream.length);
    expect(examples).toHaveLength(Math.floor(stream.length / 128));
    expect(stats.droppedPackTokens).toBe(stream.length % 128);
    for (const ex of examples) {
      expect(ex.inputIds).toHaveLength(128);
      expect(ex.labels).toEqual(ex.inputIds);
    }
    expect(examples.flatMap((e) => [...e.inputIds])).toEqual(stream.slice(0, examples.length * 128));
    expect(docs.every((d) => d[0] === tok.bosId && d.filter((id) => id === tok.bosId).length === 1)).toBe(true);
    const flat = examples.flatMap((e) => [...e.inputIds]);
    const bosAt = flat.flatMap((id, i) => (id === tok.bosId ? [i] : []));
    expect(bosAt.every((i) => i === 0 || flat[i - 1] === tok.eosId)).toBe(true);
    console.log(`packed ${records.length} stories: ${stream.length} tokens → ${examples.length} × 128, BOS at ${bosAt.join(', ')}`);
    const partial = tokenizeDataset(records, tok, { maxLength: 128, keepPartialPack: true });
    expect(partial.examples.at(-1)?.inputIds).toHaveLength(stream.length % 128);
  });

  sharedTest('stories.jsonl {text}: packing, or one truncated example per document', [TOKENIZER, STORIES_JSONL], async () => {
    const records = (await loadDataset(STORIES_JSONL)).records.slice(0, 30);
    const packed = tokenizeDataset(records, tok, { maxLength: 256, seqLen: 64 });
    expect(packed.examples.every((e) => e.inputIds.length === 64)).toBe(true);
    const single = tokenizeDataset(records, tok, { maxLength: 256, packText: false });
    expect(single.examples).toHaveLength(30);
    expect(single.examples.every((e) => e.inputIds.length <= 256 && e.inputIds[0] === tok.bosId)).toBe(true);
  });
});

describe('truncation', () => {
  const pair: DraftExample = { inputIds: [1, 10, 11, 12, 13, 14, 15, 20, 21, 22, 2], labels: [-100, -100, -100, -100, -100, -100, -100, 20, 21, 22, 2] };

  test('prompt + response: the prompt is cut first; the response stays whole', () => {
    // maxLength 8: prompt (7) keeps 8 - 4 = 4 tokens, response (4) whole
    expect(truncatePair(pair, 7, 8, 'right', 1)?.inputIds).toEqual([1, 10, 11, 12, 20, 21, 22, 2]);
    expect(truncatePair(pair, 7, 8, 'left', 1)?.inputIds).toEqual([1, 13, 14, 15, 20, 21, 22, 2]);
    expect(truncatePair(pair, 7, 8, 'drop', 1)).toBeNull();
    expect(truncatePair(pair, 7, 20, 'drop', 1)).toBe(pair);
    // maxLength 4: the prompt keeps ⌊4/4⌋ = 1 token, the response 3
    const short = truncatePair(pair, 7, 4, 'right', 1);
    expect(short).toEqual({ inputIds: [1, 20, 21, 22], labels: [-100, 20, 21, 22] });
    expect(truncatePair(pair, 7, 4, 'left', 1)?.inputIds).toEqual([1, 21, 22, 2]);
  });

  test('whole sequences: right keeps the start, left the end (BOS kept), drop drops', () => {
    const ex: DraftExample = { inputIds: [1, 5, 6, 7, 8, 9], labels: [-100, -100, 6, 7, -100, 9] };
    expect(truncateSequence(ex, 4, 'right', 1)).toEqual({ inputIds: [1, 5, 6, 7], labels: [-100, -100, 6, 7] });
    expect(truncateSequence(ex, 4, 'left', 1)).toEqual({ inputIds: [1, 7, 8, 9], labels: [-100, 7, -100, 9] });
    expect(truncateSequence(ex, 4, 'drop', 1)).toBeNull();
  });

  sharedTest('policies on real data; chats whose assistant turns are cut away are dropped and counted', [TOKENIZER, ALPACA, CHAT], () => {
    const some = alpaca.slice(0, 100);
    const full = tokenizeDataset(some, tok, { maxLength: 4096 }).examples;
    const L = 160;
    const over = full.filter((e) => e.inputIds.length > L).length;
    const dropped = tokenizeDataset(some, tok, { maxLength: L, truncation: 'drop' });
    expect(dropped.stats.droppedTooLong).toBe(over);
    expect(dropped.examples).toHaveLength(100 - over);
    const right = tokenizeDataset(some, tok, { maxLength: L, truncation: 'right' });
    expect(right.examples).toHaveLength(100);
    right.examples.forEach((e, i) => {
      expect(e.inputIds.length).toBeLessThanOrEqual(L);
      const f = full[i] as Example;
      const response = f.labels.filter((l) => l !== IGNORE_INDEX);
      if (response.length <= L - L / 4) expect(e.labels.filter((l) => l !== IGNORE_INDEX)).toEqual(response); // kept whole
    });
    const left = tokenizeDataset(some, tok, { maxLength: L, truncation: 'left' });
    expect(left.examples.every((e) => e.inputIds[0] === tok.bosId && e.inputIds.at(-1) === tok.eosId)).toBe(true);
    expect(over).toBeGreaterThan(10);
    console.log(`alpaca[0..100) at maxLength ${L}: ${over} too long; drop → ${dropped.examples.length} examples, right/left → 100`);

    const chat = chats.find((c) => c.messages.length === 2) as RecordOfKind<'chat'>;
    const firstAssistant = encodeChat(tok, chat.messages, { trainOn: 'all-assistant' }).turns[1]?.contentStart as number;
    const cut = tokenizeDataset([chat], tok, { maxLength: firstAssistant, truncation: 'right' });
    expect(cut.stats.droppedResponseTruncated).toBe(1);
    expect(cut.examples).toHaveLength(0);
  });
});
