import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkTrainingFile, describeProblems } from './check.ts';

const dir = mkdtempSync(join(tmpdir(), 'tuneforge-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** The status_details a file of these lines gets (null: it passes). */
async function details(lines: readonly (string | object)[]): Promise<string | null> {
  const path = join(dir, `f${n++}.jsonl`);
  writeFileSync(path, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n'));
  return describeProblems(await checkTrainingFile(path));
}

const chat = (...messages: object[]) => ({ messages });

describe('checkTrainingFile', () => {
  test('every format the trainer reads passes', async () => {
    expect(await details([chat({ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello', weight: 1 }), chat({ role: 'user', content: 'a' }, { role: 'assistant', content: 'b', weight: 0 }, { role: 'assistant', content: 'c' })])).toBeNull();
    expect(await details([{ prompt: 'p', completion: 'c' }])).toBeNull();
    expect(await details([{ text: 'a document' }, '', '  ', { text: 'another' }])).toBeNull(); // blank lines are skipped
    expect(await details([{ instruction: 'i', input: '', output: 'o' }, { instruction: 'i', output: 'o' }])).toBeNull();
    expect(await details([{ conversations: [{ from: 'human', value: 'q' }, { from: 'gpt', value: 'a' }] }])).toBeNull();
    expect(await details(['\uFEFF{"text":"a BOM is fine"}\r', '{"text":"and CRLF line ends"}\r'])).toBeNull();
  });

  test('bad lines are named with their line number and why, as the trainer would refuse them', async () => {
    const d = await details([
      chat({ role: 'user', content: 'hi' }, { role: 'assistant', content: 'ok' }),
      '{"messages": [',
      chat({ role: 'user', content: 'no answer' }),
      chat({ role: 'tool', content: 'x' }, { role: 'assistant', content: 'y' }),
      chat({ role: 'user', content: 'a' }, { role: 'assistant', content: 'b', weight: 0.5 }),
      { text: 'a text line in a chat file' },
      '[1, 2]',
    ]);
    expect(d).toStartWith('6 of 7 lines are invalid (records read as openai');
    expect(d).toContain('line 2: invalid JSON');
    expect(d).toContain('line 3: openai record: no assistant message');
    expect(d).toContain('line 4: openai record: field "messages.0.role": unsupported role "tool"');
    expect(d).toContain('line 5: field "messages.1.weight": must be 0 or 1, got 0.5');
    expect(d).toContain('line 6: openai record: missing field "messages"');
    expect(d).toContain('line 7: openai record: expected a JSON object, found an array');
    expect(d).not.toContain('line 1:');
  });

  test('an empty file, or one of blank lines, is an error', async () => {
    expect(await details([])).toStartWith('the file is empty');
    expect(await details(['', '   ', ''])).toStartWith('the file is empty');
  });

  test('a file of no known format says which keys it has and what is read', async () => {
    const d = await details([{ question: 'q', answer: 'a' }, { question: 'q2', answer: 'a2' }]);
    expect(d).toStartWith('all 2 lines are invalid: line 1: no known record format (keys: question, answer); expected one JSON object per line with "messages"');
  });

  test('only the first problems are listed, with a count of the rest', async () => {
    const d = await details(Array.from({ length: 25 }, () => 'not json'));
    expect(d).toStartWith('all 25 lines are invalid: line 1: invalid JSON');
    expect(d).toContain('line 10:');
    expect(d).not.toContain('line 11:');
    expect(d).toEndWith('... and 15 more');
  });
});
