/**
 * A run's tokenised data (`RunData`) as one binary buffer, and back: how the data-preparation child process hands
 * its result to the trainer (see data-process.ts).
 *
 * Layout: a little-endian uint32 byte length of a JSON header, the header, padding to a multiple of 4, then every
 * example's `inputIds` followed by its `labels` as int32, in header order. The header lists the examples' lengths
 * and how they group into the lists (train, eval, validation, and the choice items of eval and validation).
 *
 * Decoding keeps the tokens in one Int32Array and gives each example two views into it: a dataset then costs its
 * tokens (8 bytes each) and two small view objects per example, not a separate allocation per array.
 */
import type { Example } from '../data/example.ts';
import type { ChoiceItem } from './choice.ts';
import type { RunData } from './setup.ts';

/** The lists of a RunData, in the file's order. */
const EXAMPLE_LISTS = ['train', 'evalExamples', 'validation'] as const;
const CHOICE_LISTS = ['choiceEval', 'choiceValidation'] as const;

interface Header {
  /** Token count of every example, in order: the example lists, then each choice item's options. */
  lengths: number[];
  /** Examples per example list. */
  lists: Record<(typeof EXAMPLE_LISTS)[number], number>;
  /** Per choice list, per item: its label and number of options. */
  choice: Record<(typeof CHOICE_LISTS)[number], { label: number; options: number }[]>;
}

function allExamples(data: RunData): Example[] {
  return [...EXAMPLE_LISTS.flatMap((l) => data[l]), ...CHOICE_LISTS.flatMap((l) => data[l].flatMap((c) => c.options))];
}

export function encodeRunData(data: RunData): Uint8Array {
  const examples = allExamples(data);
  const header: Header = {
    lengths: examples.map((e) => e.inputIds.length),
    lists: { train: data.train.length, evalExamples: data.evalExamples.length, validation: data.validation.length },
    choice: {
      choiceEval: data.choiceEval.map((c) => ({ label: c.label, options: c.options.length })),
      choiceValidation: data.choiceValidation.map((c) => ({ label: c.label, options: c.options.length })),
    },
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const start = 4 + Math.ceil(json.length / 4) * 4;
  const tokens = header.lengths.reduce((a, b) => a + b, 0);
  const bytes = new Uint8Array(start + 8 * tokens);
  new DataView(bytes.buffer).setUint32(0, json.length, true);
  bytes.set(json, 4);
  const ints = new Int32Array(bytes.buffer, start, 2 * tokens);
  let o = 0;
  for (const e of examples) {
    if (e.labels.length !== e.inputIds.length) throw new Error(`encodeRunData: an example has ${e.inputIds.length} ids but ${e.labels.length} labels`);
    ints.set(e.inputIds, o);
    ints.set(e.labels, o + e.inputIds.length);
    o += 2 * e.inputIds.length;
  }
  return bytes;
}

export function decodeRunData(bytes: Uint8Array): RunData {
  const fail = (why: string): never => {
    throw new Error(`decodeRunData: ${why} (the data-preparation output is damaged)`);
  };
  if (bytes.length < 4) fail('shorter than its header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const jsonLength = view.getUint32(0, true);
  if (4 + jsonLength > bytes.length) fail('header longer than the buffer');
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + jsonLength))) as Header;
  const start = 4 + Math.ceil(jsonLength / 4) * 4;
  const tokens = header.lengths.reduce((a, b) => a + b, 0);
  if (start + 8 * tokens !== bytes.length) fail(`expected ${start + 8 * tokens} bytes, found ${bytes.length}`);
  // A copy into a fresh, aligned buffer of exactly the tokens' size (the input may be a view into a larger one).
  const ints = new Int32Array(bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + bytes.length));
  let o = 0;
  const examples: Example[] = header.lengths.map((n) => {
    const e = { inputIds: ints.subarray(o, o + n), labels: ints.subarray(o + n, o + 2 * n) };
    o += 2 * n;
    return e;
  });
  let k = 0;
  const take = (n: number) => examples.slice(k, (k += n));
  const [train, evalExamples, validation] = EXAMPLE_LISTS.map((l) => take(header.lists[l]));
  const [choiceEval, choiceValidation] = CHOICE_LISTS.map((l) => header.choice[l].map((c): ChoiceItem => ({ label: c.label, options: take(c.options) })));
  if (k !== examples.length) fail(`the header groups ${k} of ${examples.length} examples`);
  return { train: train!, evalExamples: evalExamples!, validation: validation!, choiceEval: choiceEval!, choiceValidation: choiceValidation! };
}
