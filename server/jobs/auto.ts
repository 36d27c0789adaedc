/**
 * What OpenAI's `"auto"` hyperparameters become, and the base learning rate each technique's multiplier scales.
 *
 * - n_epochs: OpenAI's published rule (openai-cookbook, "Data preparation and analysis for chat model fine-tuning"):
 *   3 epochs, raised so that small files are seen at least ~100 times in all (at most 25 epochs), lowered so that big
 *   files are not trained on for more than ~25 000 examples (at least 1 epoch). Without an example count: 3.
 * - batch_size: 8 (the trainer's default, and what a CPU step handles without a memory budget), never more than the
 *   examples; for big files OpenAI's ~0.2 % of the examples, as a power of two, up to 32: 16 from 8 000 examples,
 *   32 from 16 000. Larger batches mostly cost memory here (a budget splits them into micro-batches anyway).
 * - learning_rate_multiplier: 1, times the base learning rate of the technique (below).
 */

/** Base learning rates by technique, from each method's paper / PEFT's examples, at multiplier 1. */
export const BASE_LEARNING_RATES: Readonly<Record<string, number>> = {
  full: 2e-5, // full fine-tuning of 100M+ parameter models (1e-3 only suits toy models)
  lisa: 2e-5, // LISA trains full layers: full fine-tuning's rate
  lora: 2e-4, // QLoRA / PEFT
  adalora: 2e-4,
  adapters: 3e-4, // LLM-Adapters' bottleneck adapters
  prefix: 1e-2, // PEFT's prefix-tuning examples
  prompt: 3e-2, // PEFT's prompt-tuning examples
  'p-tuning': 1e-2,
};

/** With the ZO estimator (MeZO, plugins/zo/README.md): far smaller steps for weights, a little smaller for prefixes. */
export const ZO_BASE_LEARNING_RATES: Readonly<Record<string, number>> = {
  full: 1e-6,
  lisa: 1e-6,
  lora: 5e-5,
  adalora: 5e-5,
  adapters: 5e-5,
  prefix: 1e-3,
  prompt: 1e-3,
  'p-tuning': 1e-3,
};

const TARGET_EPOCHS = 3;
const MIN_TARGET_EXAMPLES = 100;
const MAX_TARGET_EXAMPLES = 25_000;
const MAX_DEFAULT_EPOCHS = 25;

export function autoEpochs(examples: number | undefined): number {
  if (examples === undefined || examples <= 0) return TARGET_EPOCHS;
  if (examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES) return Math.min(MAX_DEFAULT_EPOCHS, Math.floor(MIN_TARGET_EXAMPLES / examples));
  if (examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES) return Math.max(1, Math.floor(MAX_TARGET_EXAMPLES / examples));
  return TARGET_EPOCHS;
}

export function autoBatchSize(examples: number | undefined): number {
  if (examples === undefined || examples <= 0) return 8;
  const share = 0.002 * examples;
  const size = share >= 16 ? Math.min(32, 2 ** Math.floor(Math.log2(share))) : 8;
  return Math.min(size, examples);
}

/**
 * The base learning rate of a plugin list: the smallest among its techniques (several techniques at once train
 * safest at the most cautious rate). Undefined, with the reason, when no plugin has a known rate (a package, or the
 * forward-gradient estimator, whose useful rates depend on the model).
 */
export function baseLearningRate(names: readonly string[]): { lr: number } | { error: string } {
  if (names.includes('forward-grad')) return { error: 'forward-grad has no default learning rate (useful rates depend on the model)' };
  const table = names.includes('zo') ? ZO_BASE_LEARNING_RATES : BASE_LEARNING_RATES;
  const rates = names.flatMap((n) => (table[n] === undefined ? [] : [table[n]]));
  if (rates.length === 0) return { error: `none of the plugins (${names.join(', ')}) has a default learning rate` };
  return { lr: Math.min(...rates) };
}
