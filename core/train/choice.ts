/**
 * Multiple-choice and classification tasks scored by a language model (how SST-2 and COPA are evaluated): each
 * record becomes `template(text) + choice` per choice; training puts the loss on the correct answer only, and the
 * prediction is the choice with the highest total log-likelihood.
 */
import { commonPrefixLength, encodeText } from '../data/encode.ts';
import { compactExample, type Example } from '../data/example.ts';
import { loadDataset } from '../data/load.ts';
import { progressLines } from '../data/progress.ts';
import type { RecordOfKind } from '../data/records.ts';
import type { Tokenizer } from '../tokenizer/index.ts';

export interface ChoiceTask {
  template: string;
  choices: readonly string[];
}

/** One scored record: one example per choice, the loss span covering that choice's tokens. */
export interface ChoiceItem {
  label: number;
  options: Example[];
}

function labelIndex(label: RecordOfKind<'classification'>['label'], task: ChoiceTask, where: string): number {
  const n = typeof label === 'number' ? label : typeof label === 'string' && /^\d+$/.test(label.trim()) ? Number(label) : task.choices.indexOf(String(label));
  if (!Number.isInteger(n) || n < 0 || n >= task.choices.length) {
    throw new Error(`${where}: label ${JSON.stringify(label)} is not an index into the ${task.choices.length} choices`);
  }
  return n;
}

/** prompt + answer as one token sequence; labels (unshifted) only on the answer's tokens. */
export function encodeChoice(tok: Tokenizer, prompt: string, answer: string, maxLength: number): Example {
  const promptIds = encodeText(tok, prompt);
  const full = encodeText(tok, prompt + answer);
  // Tokenising the joined text keeps the tokenizer's merges across the boundary right; the answer is what differs.
  const k = Math.min(commonPrefixLength(promptIds, full), full.length - 1);
  const keep = Math.max(0, full.length - maxLength);
  const inputIds = full.slice(keep);
  const labels = full.map((id, t) => (t >= k ? id : -100)).slice(keep);
  return compactExample({ inputIds, labels });
}

/**
 * Reads labelled records (TSV or JSON). `only: 'label'` encodes just the correct answer of each record (training
 * data: half the tokenizer work) except the records `fullFor` picks (a validation split, scored like eval data);
 * otherwise every choice is encoded (scoring). `log` gets progress lines.
 */
export async function loadChoiceItems(
  files: string | readonly string[], tok: Tokenizer, task: ChoiceTask, maxLength: number,
  opts: { limit?: number; only?: 'label'; fullFor?: (index: number, count: number) => boolean; log?: (line: string) => void } = {},
): Promise<ChoiceItem[]> {
  const data = await loadDataset(files, { format: 'classification' });
  const labelled = data.records.map((r, i) => ({ record: r as RecordOfKind<'classification'>, i })).filter(({ record }) => record.label !== null);
  const count = Math.min(labelled.length, opts.limit ?? Infinity);
  const items: ChoiceItem[] = [];
  const progress = opts.log && progressLines(opts.log, 'data: records tokenised', count);
  for (const [k, { record, i }] of labelled.slice(0, count).entries()) {
    progress?.(k);
    const label = labelIndex(record.label!, task, `${files} record ${i + 1}`);
    const prompt = task.template.replaceAll('{text}', record.text);
    const labelOnly = opts.only === 'label' && !opts.fullFor?.(k, count);
    const options = task.choices.map((c, j) => (labelOnly && j !== label ? { inputIds: new Int32Array(0), labels: new Int32Array(0) } : encodeChoice(tok, prompt, c, maxLength)));
    items.push({ label, options });
  }
  if (items.length === 0) throw new Error(`${files}: no labelled records for the choice task`);
  return items;
}

/** Training examples: the correct answer of each item. */
export function choiceTrainingExamples(items: readonly ChoiceItem[]): Example[] {
  return items.map((it) => it.options[it.label]!);
}
