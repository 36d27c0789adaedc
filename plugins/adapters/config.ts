import { z } from 'zod';

/**
 * The activations LLM-Adapters accepts (`non_linearity` is looked up in transformers' ACT2FN) that our primitives
 * express exactly. `gelu_new`, `gelu_fast` and `gelu_pytorch_tanh` are the same tanh approximation.
 */
export const NON_LINEARITIES = [
  'tanh', 'relu', 'leaky_relu', 'gelu', 'gelu_new', 'gelu_fast', 'gelu_pytorch_tanh', 'quick_gelu', 'silu', 'swish', 'sigmoid', 'linear',
] as const;
export type NonLinearity = (typeof NON_LINEARITIES)[number];

/**
 * The fork's default target modules for LLaMA (peft/src/peft/mapping.py): series adapters on the MLP
 * (TRANSFORMERS_MODELS_TO_BOTTLENECK_TARGET_MODULES_MAPPING), parallel ones beside q, v, k
 * (TRANSFORMERS_MODELS_TO_PARALLEL_TARGET_MODULES_MAPPING).
 */
export const DEFAULT_TARGETS = {
  series: ['gate_proj', 'up_proj', 'down_proj'],
  parallel: ['q_proj', 'v_proj', 'k_proj'],
} as const satisfies Record<'series' | 'parallel', readonly string[]>;

export const adaptersSchema = z
  .object({
    kind: z
      .enum(['series', 'parallel'])
      .default('series')
      .describe('series: the adapter sits in the data path (before gate_proj / up_proj, after down_proj and other layers); parallel: it runs beside the layer, y = W x + f(x)'),
    bottleneckSize: z
      .number().int().positive().default(256)
      .describe('width of the bottleneck between adapter_down and adapter_up (LLM-Adapters default 256)'),
    clampToWidth: z
      .boolean().default(true)
      .describe('when bottleneckSize exceeds the width the adapter reads, use that width (logged); false keeps bottleneckSize, as LLM-Adapters does'),
    nonLinearity: z
      .enum(NON_LINEARITIES).default('tanh')
      .describe('activation between adapter_down and adapter_up (transformers ACT2FN names; LLM-Adapters default tanh)'),
    dropout: z
      .number().min(0).lt(1).default(0)
      .describe("dropout on the adapter's input during training (LLM-Adapters' adapter_dropout, default 0)"),
    scaling: z
      .union([z.number(), z.literal('learned')])
      .default(1)
      .describe('factor on the adapter output: a number, or "learned" for a trainable scalar per adapter (`<module>.adapter_scaling`, starts at 1)'),
    init: z
      .enum(['bert', 'mam'])
      .default('bert')
      .describe('bert: adapter_down and adapter_up ~ N(0, 0.02²) (LLM-Adapters default); mam: adapter_down Kaiming-uniform (a = √5), adapter_up zero, so training starts at the base model'),
    targets: z
      .union([z.array(z.string()).min(1), z.string()])
      .optional()
      .describe('modules to adapt: names, a regular expression over full module names, or "all-linear"; default: gate_proj, up_proj, down_proj (series) or q_proj, v_proj, k_proj (parallel)'),
  })
  .strict();

export type AdaptersOptions = z.input<typeof adaptersSchema>;
export type AdaptersConfig = z.output<typeof adaptersSchema>;

/** The targets a config adapts: its own, or the fork's LLaMA defaults for its kind. */
export function targetsOf(config: Pick<AdaptersConfig, 'kind' | 'targets'>): readonly string[] | string {
  return config.targets ?? DEFAULT_TARGETS[config.kind];
}
