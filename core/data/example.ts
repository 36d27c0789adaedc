/**
 * A training example.
 *
 * Label convention: labels are NOT shifted. `labels[t]` is `inputIds[t]` when the token at position t is trained
 * on (the model is asked to predict it from positions < t), else {@link IGNORE_INDEX} (-100). The trainer shifts:
 * logits at position t are scored against `labels[t + 1]`, exactly as Hugging Face's causal-LM loss does. So
 * `labels[0]` is never used as a target, and an EOS that should be learnt needs its own position with its label.
 */
export interface Example {
  readonly inputIds: number[];
  readonly labels: number[];
}

/** Label of positions without loss (PyTorch's CrossEntropyLoss `ignore_index`). */
export const IGNORE_INDEX = -100;

/** Number of positions of an example that carry a loss. */
export function trainedCount(ex: Example): number {
  let n = 0;
  for (const l of ex.labels) if (l !== IGNORE_INDEX) n++;
  return n;
}
