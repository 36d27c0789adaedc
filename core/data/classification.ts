/** Classification records ({text, label}, e.g. SST-2) → token ids with their label, for classifier heads. */
import type { Tokenizer } from '../tokenizer/index.ts';
import { encodeText } from './encode.ts';
import type { RecordOfKind } from './records.ts';

/** A tokenised classification example. `label` is null for unlabelled rows. */
export interface ClassificationExample {
  readonly inputIds: number[];
  readonly label: number | string | null;
}

/** Encodes each text (BOS as the tokenizer adds it), keeping its first `maxLength` tokens. */
export function tokenizeClassification(
  records: readonly RecordOfKind<'classification'>[],
  tok: Tokenizer,
  maxLength = Number.POSITIVE_INFINITY,
): ClassificationExample[] {
  return records.map((r) => ({ inputIds: encodeText(tok, r.text).slice(0, maxLength), label: r.label }));
}
