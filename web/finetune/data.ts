/**
 * The page's data, shared with its test: the tokenizer from tokenizer.json, lines of text packed into rows of T
 * tokens (core/data's packing, as the trainer does plain text) and batches taken in order, cycling.
 */
import { collate } from '../../core/data/batch.ts';
import type { Example } from '../../core/data/example.ts';
import { packDocuments } from '../../core/data/pack.ts';
import type { HostTensor } from '../../core/ir/host.ts';
import type { ModelConfig } from '../../core/models/config.ts';
import { createTokenizer, type Tokenizer } from '../../core/tokenizer/tokenizer.ts';
import { shiftLabels } from '../../core/train/batches.ts';

/**
 * The model's tokenizer from tokenizer.json alone (the page serves no tokenizer_config.json): BOS and EOS come from
 * config.json's `bos_token_id` / `eos_token_id`, which is where transformers falls back to for generation too.
 */
export function pageTokenizer(tokenizerJson: Readonly<Record<string, unknown>>, config: ModelConfig): Tokenizer {
  const plain = createTokenizer({ tokenizer: tokenizerJson });
  const token = (id: number | null | undefined) => (id === null || id === undefined ? undefined : plain.idToToken(id));
  const special: Record<string, string> = {};
  const bos = token(config.bosTokenId), eos = token(config.eosTokenIds[0]);
  if (bos) special.bos_token = bos;
  if (eos) special.eos_token = eos;
  return createTokenizer({ tokenizer: tokenizerJson, config: special });
}

/** Every non-empty line is a document; BOS before and EOS after each, packed into rows of `seqLen` tokens. */
export function packLines(tok: Tokenizer, text: string, seqLen: number, maxLines?: number): Example[] {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0).slice(0, maxLines);
  const { examples } = packDocuments(tok, lines, seqLen);
  if (examples.length === 0) throw new Error(`the text (${lines.length} lines) packs into no row of ${seqLen} tokens`);
  return examples;
}

/** Rows `step·B … step·B + B − 1` (mod the row count), as model feeds: ids and next-token labels, int64 [B, T]. */
export function batchAt(examples: readonly Example[], step: number, B: number, padId: number): { input_ids: HostTensor; labels: HostTensor } {
  const indices = Array.from({ length: B }, (_, i) => (step * B + i) % examples.length);
  const b = collate(examples, indices, { padId, padTo: 'longest', multipleOf: 1 });
  return { input_ids: b.inputIds, labels: shiftLabels(b.labels) };
}
