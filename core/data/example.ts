/**
 * A training example.
 *
 * Label convention: labels are NOT shifted. `labels[t]` is `inputIds[t]` when the token at position t is trained
 * on (the model is asked to predict it from positions < t), else {@link IGNORE_INDEX} (-100). The trainer shifts:
 * logits at position t are scored against `labels[t + 1]`, exactly as Hugging Face's causal-LM loss does. So
 * `labels[0]` is never used as a target, and an EOS that should be learnt needs its own position with its label.
 */
export interface Example {
  readonly inputIds: Int32Array;
  readonly labels: Int32Array;
}

/**
 * An example while it is built (tokenised, truncated): plain arrays. Datasets keep the compact {@link Example}
 * instead: a JavaScript number array costs 8 bytes a token and more; SST-2's 67k training sentences (3.5 M tokens)
 * held as arrays kept 355 MiB resident, as int32 215 MiB (RSS growth after loading, a full GC and 6 s; most of it
 * tokenizer garbage the heap keeps, which is why the trainer tokenises in a child process: core/train/data-process.ts).
 */
export interface DraftExample {
  readonly inputIds: number[];
  readonly labels: number[];
}

/** The compact form of an example. */
export function compactExample(ex: DraftExample): Example {
  return { inputIds: Int32Array.from(ex.inputIds), labels: Int32Array.from(ex.labels) };
}

/** Label of positions without loss (PyTorch's CrossEntropyLoss `ignore_index`). */
export const IGNORE_INDEX = -100;

/** Number of positions of an example that carry a loss. */
export function trainedCount(ex: Example | DraftExample): number {
  let n = 0;
  for (const l of ex.labels) if (l !== IGNORE_INDEX) n++;
  return n;
}
