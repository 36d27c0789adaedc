import { describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { DatasetError, loadDataset } from './index.ts';
import type { DataRecord } from './index.ts';
import { DATA, sharedTest, tempFiles } from './test-helpers.ts';

const ALPACA = join(DATA, 'alpaca', 'alpaca_data_1k.json');
const CHAT = join(DATA, 'chat', 'dummy_conversation.json');
const STORIES_TXT = join(DATA, 'tinystories', 'tinystories_v2_sample.txt');
const STORIES_JSONL = join(DATA, 'tinystories', 'stories.jsonl');
const SST2_DEV = join(DATA, 'sst2', 'dev.tsv');
const SST2_TEST = join(DATA, 'sst2', 'test.tsv');

function kinds(records: readonly DataRecord[]): string[] {
  return [...new Set(records.map((r) => r.kind))];
}

describe('real files in ../shared/data', () => {
  sharedTest('alpaca JSON array: 1000 instruction records with line numbers', [ALPACA], async () => {
    const d = await loadDataset(ALPACA);
    expect(d.files).toEqual([{ file: ALPACA, format: 'alpaca', records: 1000, bad: 0 }]);
    expect(d.warnings).toEqual([]);
    const r = d.records[1];
    expect(r?.kind).toBe('instruction');
    if (r?.kind === 'instruction') {
      expect(r.instruction).toBe('Rewrite the following sentence to use a passive voice instead.');
      expect(r.input).toBe('The president delivered a speech yesterday.');
      expect(r.source).toMatchObject({ file: ALPACA, index: 1, line: 1 }); // the whole array is on one line
    }
  });

  sharedTest('ShareGPT chats: roles mapped to user/assistant', [CHAT], async () => {
    const d = await loadDataset(CHAT);
    expect(d.files[0]?.format).toBe('sharegpt');
    expect(d.records).toHaveLength(500);
    const r = d.records[0];
    if (r?.kind !== 'chat') throw new Error('expected a chat');
    expect(r.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(r.messages[0]?.content).toBe('Who are you?');
    expect(r.source.line).toBe(2); // "{" of the first element
    expect(d.records[1]?.source.line).toBe(23);
  });

  sharedTest('.txt split on <|endoftext|> (auto), on blank lines, or one per file', [STORIES_TXT], async () => {
    const auto = await loadDataset(STORIES_TXT);
    expect(kinds(auto.records)).toEqual(['text']);
    expect(auto.records).toHaveLength(5);
    expect(auto.records.map((r) => r.source.line)).toEqual([2, 8, 12, 17, 22]);
    const first = auto.records[0];
    if (first?.kind === 'text') expect(first.text.startsWith('Once upon a time there was a little boy named Ben.')).toBe(true);
    expect((await loadDataset(STORIES_TXT, { textSplit: 'file' })).records).toHaveLength(1);
    expect((await loadDataset(STORIES_TXT, { textSplit: 'blank-line' })).records).toHaveLength(2); // one blank line inside
  });

  sharedTest('stories.jsonl {text}: text records', [STORIES_JSONL], async () => {
    const d = await loadDataset(STORIES_JSONL);
    expect(d.files[0]).toMatchObject({ format: 'text', records: 1092, bad: 0 });
    expect(d.records[1091]?.source.line).toBe(1092);
  });

  sharedTest('SST-2 TSV: {text, label} records; the unlabelled test split has label null', [SST2_DEV, SST2_TEST], async () => {
    const dev = await loadDataset(SST2_DEV);
    expect(dev.files[0]).toMatchObject({ format: 'classification', records: 872, bad: 0 });
    expect(dev.records[0]).toMatchObject({ kind: 'classification', text: "it 's a charming and often affecting journey . ", label: 1 }); // verbatim: GLUE's trailing space kept
    expect(dev.records[0]?.source.line).toBe(2);
    const testSplit = await loadDataset(SST2_TEST);
    expect(testSplit.records[0]).toMatchObject({ kind: 'classification', label: null });
  });
});

describe('formats and malformed records (temp files)', () => {
  test('OpenAI messages, prompt/completion, forced format, JSON file holding JSON Lines', async () => {
    const t = tempFiles({
      'msgs.jsonl':
        JSON.stringify({ messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'Q' }, { role: 'assistant', content: [{ type: 'text', text: 'A' }] }] }) + '\n',
      'pc.json': '{"prompt": "2+2=", "completion": "4"}\n{"prompt": "3+3=", "completion": "6"}\n',
      'txt.jsonl': '{"text": "a doc", "label": 3}\n',
      'one.json': '{\n  "prompt": "p",\n  "completion": "c"\n}\n',
    });
    try {
      const d = await loadDataset([t.path('msgs.jsonl'), t.path('pc.json')]);
      expect(d.files.map((f) => f.format)).toEqual(['openai', 'prompt-completion']);
      expect(d.records[0]).toMatchObject({ kind: 'chat', messages: [{ role: 'system' }, { role: 'user' }, { role: 'assistant', content: 'A' }] });
      expect(d.records[2]).toMatchObject({ kind: 'prompt-completion', prompt: '3+3=', source: { line: 2, index: 1 } });
      expect((await loadDataset(t.path('txt.jsonl'))).records[0]?.kind).toBe('classification');
      expect((await loadDataset(t.path('txt.jsonl'), { format: 'text' })).records[0]?.kind).toBe('text');
      expect((await loadDataset(t.path('one.json'))).records).toMatchObject([{ kind: 'prompt-completion', prompt: 'p' }]);
    } finally {
      t.cleanup();
    }
  });

  test('bad JSON lines, missing fields, wrong types, empty responses: reported with file and line', async () => {
    const good = (i: number) => JSON.stringify({ instruction: `do ${i}`, input: '', output: `done ${i}` });
    const lines = Array.from({ length: 200 }, (_, i) => good(i));
    lines[3] = '{"instruction": "x", "output": "y"'; // bad JSON, line 4
    lines[10] = JSON.stringify({ instruction: 'no output' }); // line 11
    lines[20] = JSON.stringify({ instruction: 'x', output: 42 }); // line 21
    lines[30] = JSON.stringify({ instruction: 'x', output: '   ' }); // line 31
    const t = tempFiles({ 'bad.jsonl': lines.join('\n') + '\n\n' });
    try {
      const d = await loadDataset(t.path('bad.jsonl'), { maxBadFraction: 0.05 });
      expect(d.records).toHaveLength(196);
      expect(d.total).toBe(200);
      const w = d.warnings.map((p) => [p.file === t.path('bad.jsonl'), p.line, p.reason]);
      console.log(d.warnings.map((p) => `${p.line}: ${p.reason}`).join('\n'));
      expect(w[0]).toEqual([true, 4, expect.stringContaining('invalid JSON')]);
      expect(w[1]).toEqual([true, 11, 'missing field "output"']);
      expect(w[2]).toEqual([true, 21, expect.stringContaining('field "output"')]);
      expect(w[3]).toEqual([true, 31, 'field "output": empty response']);
      // Over the default 1%: refused, with the problems listed.
      const err = await loadDataset(t.path('bad.jsonl')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DatasetError);
      expect((err as DatasetError).message).toContain('4 of 200 records are malformed');
      expect((err as DatasetError).message).toContain(`${t.path('bad.jsonl')}:11 (record 10): missing field "output"`);
    } finally {
      t.cleanup();
    }
  });

  test('JSON array: a malformed element is reported by record index and line, the rest is read', async () => {
    const text = '[\n  {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},\n' +
      '  {"conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "x"}]},\n' +
      '  {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": ""}]},\n' +
      '  {"conversations": [{"from": "human", "value": "no answer"}]},\n' +
      '  {"conversations": [{"from": "human" "value": "broken"}]},\n' +
      '  {"conversations": [{"from": "human", "value": "[tricky], {\\"quoted\\"}"}, {"from": "gpt", "value": "ok"}]}\n]\n';
    const t = tempFiles({ 'chats.json': text });
    try {
      const d = await loadDataset(t.path('chats.json'), { maxBadFraction: 1 });
      expect(d.records.map((r) => r.source.index)).toEqual([0, 5]);
      expect(d.warnings.map((w) => [w.index, w.line])).toEqual([[1, 3], [2, 4], [3, 5], [4, 6]]);
      expect(d.warnings[0]?.reason).toContain('unsupported role "robot"');
      expect(d.warnings[1]?.reason).toContain('empty response');
      expect(d.warnings[2]?.reason).toContain('no assistant message');
      expect(d.warnings[3]?.reason).toContain('invalid JSON');
      const err = await loadDataset(t.path('chats.json'), { maxBadFraction: 0.5 }).catch((e: unknown) => e);
      expect((err as DatasetError).problems).toHaveLength(4);
    } finally {
      t.cleanup();
    }
  });

  test('files larger than the 1 MiB read chunk: elements and lines split across chunks, non-ASCII text', async () => {
    const n = 6000;
    const rec = (i: number) => ({ instruction: `task ${i}: "[quoted]", {braces}, back\\slash ü 日本語 🚀 `.repeat(6), output: `answer ${i} ]}` });
    const records = Array.from({ length: n }, (_, i) => rec(i));
    const arrayText = '[\n' + records.map((r, i) => (i === 4321 ? '  {"instruction": "x", "output": }' : '  ' + JSON.stringify(r))).join(',\n') + '\n]\n';
    const t = tempFiles({ 'big.json': arrayText, 'big.jsonl': records.map((r) => JSON.stringify(r)).join('\n') });
    try {
      expect(arrayText.length).toBeGreaterThan(2 * 1024 * 1024);
      const fromArray = await loadDataset(t.path('big.json'));
      expect(fromArray.records).toHaveLength(n - 1);
      expect(fromArray.warnings.map((w) => [w.index, w.line])).toEqual([[4321, 4323]]);
      const pick = (r: DataRecord | undefined) => (r?.kind === 'instruction' ? [r.instruction, r.output, r.source.index, r.source.line] : r);
      expect(pick(fromArray.records[5000])).toEqual([rec(5001).instruction, rec(5001).output, 5001, 5003]);
      const fromLines = await loadDataset(t.path('big.jsonl'));
      expect(fromLines.records).toHaveLength(n);
      expect(pick(fromLines.records[5999])).toEqual([rec(5999).instruction, rec(5999).output, 5999, 6000]);
    } finally {
      t.cleanup();
    }
  });

  test('refusal lists the first 10 problems and the count', async () => {
    const lines = Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? '{"text": "ok"}' : 'not json'));
    const t = tempFiles({ 'half.jsonl': lines.join('\n') });
    try {
      const err = (await loadDataset(t.path('half.jsonl')).catch((e: unknown) => e)) as DatasetError;
      expect(err).toBeInstanceOf(DatasetError);
      expect(err.message).toContain('15 of 30 records are malformed (50.00%');
      expect(err.message.split('\n').filter((l) => l.includes('invalid JSON'))).toHaveLength(10);
      expect(err.message).toContain('... and 5 more');
    } finally {
      t.cleanup();
    }
  });

  test('a file of unknown records asks for the format option; unsupported extensions are refused', async () => {
    const t = tempFiles({ 'q.jsonl': '{"question": "q", "answer": "a"}\n', 'x.csv': 'a,b\n' });
    try {
      await expect(loadDataset(t.path('q.jsonl'))).rejects.toThrow(/keys seen: question, answer/);
      await expect(loadDataset(t.path('x.csv'))).rejects.toThrow(/unsupported file type/);
      await expect(loadDataset(t.path('q.jsonl'), { maxBadFraction: 2 })).rejects.toThrow(/maxBadFraction/);
    } finally {
      t.cleanup();
    }
  });
});
