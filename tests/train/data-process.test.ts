/**
 * Data preparation in a child process (core/train/data-process.ts): the same examples as in-process, its log lines
 * passed on, its failures reported with their message, and the binary hand-over format round-tripping exactly.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Example } from '../../core/data/example.ts';
import { loadTokenizer } from '../../core/tokenizer/index.ts';
import { loadRunDataInChild } from '../../core/train/data-process.ts';
import { decodeRunData, encodeRunData } from '../../core/train/run-data-file.ts';
import { loadRunData, type RunData } from '../../core/train/setup.ts';
import { removeTempDirs, storiesMissing, STORIES, tempDir, tinyConfig, writeTinyData } from './helpers.ts';

afterAll(removeTempDirs);

const plain = (e: Example) => ({ inputIds: [...e.inputIds], labels: [...e.labels] });
const plainData = (d: RunData) => ({
  train: d.train.map(plain),
  evalExamples: d.evalExamples.map(plain),
  choiceEval: d.choiceEval.map((c) => ({ label: c.label, options: c.options.map(plain) })),
  validation: d.validation.map(plain),
  choiceValidation: d.choiceValidation.map((c) => ({ label: c.label, options: c.options.map(plain) })),
});

test('run-data file: encode then decode gives the same examples, grouped the same way, in one token buffer', () => {
  const ex = (ids: number[], labels: number[]): Example => ({ inputIds: Int32Array.from(ids), labels: Int32Array.from(labels) });
  const data: RunData = {
    train: [ex([1, 5, 6], [-100, 5, 6]), ex([1, 7], [-100, 7])],
    evalExamples: [ex([1, 9, 9, 9], [-100, -100, 9, 9])],
    choiceEval: [
      { label: 1, options: [ex([1, 3], [-100, 3]), ex([1, 4, 4], [-100, 4, 4])] },
      { label: 0, options: [ex([1, 2], [-100, 2]), ex([1, 8], [-100, 8])] },
    ],
    validation: [ex([1, 4], [-100, 4])],
    choiceValidation: [{ label: 0, options: [ex([1, 6], [-100, 6]), ex([1, 6, 2], [-100, 6, 2])] }],
  };
  const bytes = encodeRunData(data);
  const back = decodeRunData(bytes);
  expect(plainData(back)).toEqual(plainData(data));
  expect(back.train[1]!.inputIds.buffer).toBe(back.choiceValidation[0]!.options[1]!.labels.buffer);
  expect(() => decodeRunData(bytes.subarray(0, bytes.length - 4))).toThrow(/damaged/);
});

describe.skipIf(storiesMissing('data preparation in a child process'))('data preparation in a child process', () => {
  test('gives exactly the in-process examples (prompt/completion with an eval split, and a choice task)', async () => {
    const dir = tempDir('data-child');
    const cfg = tinyConfig(writeTinyData(dir, 40), join(dir, 'run'), { data: { evalFraction: 0.25, validationFraction: 0.1 } });
    const tsv = join(dir, 'labels.tsv');
    writeFileSync(tsv, 'sentence\tlabel\na fine film \t1\na dull one \t0\nwarm and funny \t1\n');
    const choice = tinyConfig(writeTinyData(dir, 4), join(dir, 'run2'), {
      data: { validationFraction: 0.3 },
      task: { choice: { template: 'Review: {text}\nSentiment:', choices: [' negative', ' positive'], trainFile: tsv, evalFile: tsv } },
    });
    const tok = await loadTokenizer(STORIES);
    for (const c of [cfg, choice]) {
      const logs: string[] = [];
      const inChild = await loadRunDataInChild(c, STORIES, (l) => logs.push(l), 512);
      const inProcess = await loadRunData(c, tok, () => {}, 512);
      expect(plainData(inChild)).toEqual(plainData(inProcess));
      expect(inChild.train.length).toBeGreaterThan(0);
      expect(inChild.validation.length + inChild.choiceValidation.length).toBeGreaterThan(0);
      // Validation items are scored: every choice is encoded, not only the answer.
      for (const item of inChild.choiceValidation) for (const o of item.options) expect(o.inputIds.length).toBeGreaterThan(0);
      expect(logs.some((l) => /training (examples|records)/.test(l))).toBe(true);
    }
  }, 30_000);

  test('a failure in the child is reported with its message (a dataset of malformed records names file and line)', async () => {
    const dir = tempDir('data-child-bad');
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "a", "completion": " b"}\nnot json\n{"nothing": 1}\n');
    const cfg = tinyConfig(bad, join(dir, 'run'));
    const err = await loadRunDataInChild(cfg, STORIES, () => {}, 512).then(() => undefined, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toContain('2 of 3 records are malformed');
    expect(err!.message).toMatch(/bad\.jsonl:2 \(record 1\): invalid JSON/);
    expect(err!.message).toMatch(/bad\.jsonl:3 \(record 2\): missing field "prompt"/);
  }, 30_000);
});
