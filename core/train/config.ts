/**
 * The training config: one object, validated by zod (messages name the field path), written as a typed TS file with
 * `defineConfig({...})` or sent as JSON. Plugins are factory calls in TS, or `"name"` / `{ name, options }` in JSON.
 */
import { z } from 'zod';
import { DataOptionsSchema } from '../data/options.ts';
import type { Plugin } from '../plugin/hooks.ts';

const pluginObject = z.custom<Plugin>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string',
  { message: 'expected a plugin object (a factory call like lora({...})), a plugin name, or { name, options }' },
);
const pluginReference = z.union([
  z.string().describe('a built-in plugin name (full, lora) or an npm package / path exporting a plugin factory'),
  z.object({ name: z.string(), options: z.record(z.string(), z.unknown()).default({}) }).strict(),
]);

const files = z.union([z.string(), z.array(z.string()).min(1)]);

export const choiceTaskSchema = z
  .object({
    template: z.string().refine((t) => t.includes('{text}'), { message: 'template must contain {text}' })
      .describe('prompt for each record, e.g. "Review: {text}\\nSentiment:"'),
    choices: z.array(z.string()).min(2).describe('answer strings by label index, e.g. [" negative", " positive"]'),
    trainFile: files.describe('labelled records: .tsv (sentence, label) or JSON with text/sentence and label'),
    evalFile: files.optional().describe('labelled records scored by comparing the log-likelihood of each choice'),
    evalLimit: z.number().int().positive().optional().describe('score at most this many eval records'),
  })
  .strict();

export const trainConfigSchema = z
  .object({
    model: z.string().describe('model source: a local folder or a Hub id owner/name[@revision]'),
    output: z.string().default('runs/run').describe('run folder: metrics.jsonl, loss.svg, checkpoints/, export/'),
    seed: z.number().int().default(0).describe('seed for data order, initialisation, dropout and sampling'),
    data: DataOptionsSchema.extend({
      train: files.optional().describe('training files (.json, .jsonl, .txt, .tsv); not needed with task'),
      eval: files.optional().describe('held-out files for eval loss; default: evalFraction of the training data'),
      evalFraction: z.number().min(0).lt(1).default(0).describe('share of training examples held out for eval loss when no eval file is given'),
      validationFraction: z.number().min(0).lt(1).default(0)
        .describe('share of the training records held out as a validation split (val_* metrics), for checkpoint.best and early stopping; never the eval set the report scores'),
    }).strict().prefault({}).describe('datasets and how records become token sequences'),
    task: z
      .object({ choice: choiceTaskSchema })
      .partial()
      .strict()
      .prefault({})
      .describe('multiple-choice / classification task: trains on the answer and reports accuracy (SST-2, COPA)'),
    train: z
      .object({
        steps: z.number().int().positive().optional().describe('optimizer steps; default: one epoch'),
        epochs: z.number().positive().optional().describe('epochs instead of steps'),
        batchSize: z.number().int().positive().default(8).describe('examples per optimizer step (the effective batch)'),
        microBatchSize: z.number().int().positive().optional().describe('examples per forward/backward pass; gradients are accumulated up to batchSize'),
        sampling: z.enum(['epochs', 'random']).default('epochs').describe('walk shuffled epochs, or draw each batch at random with replacement'),
        bucketByLength: z.boolean().default(false).describe('group examples of similar length to reduce padding'),
        padMultiple: z.number().int().positive().default(16).describe('pad sequence lengths to a multiple of this, so few distinct shapes are compiled'),
        optimizer: z.enum(['adamw', 'sgd']).default('adamw').describe('AdamW (decoupled weight decay) or SGD with momentum'),
        optimizerOn: z.enum(['host', 'device']).default('host')
          .describe("where clipping and the optimizer update run: 'host' as JavaScript loops over the parameters, 'device' as compiled graphs on the runner (the same formulas to float32 rounding; the checkpoint format is the same, so a run may switch on resume)"),
        lr: z.number().positive().default(1e-4).describe('peak learning rate'),
        schedule: z.enum(['constant', 'linear', 'cosine']).default('linear').describe('learning-rate schedule after warmup'),
        warmupSteps: z.number().int().min(0).default(0).describe('linear warmup steps'),
        warmupRatio: z.number().min(0).max(1).default(0).describe('warmup as a share of all steps (when warmupSteps is 0)'),
        minLrRatio: z.number().min(0).max(1).default(0).describe('cosine: final lr as a share of the peak'),
        weightDecay: z.number().min(0).default(0).describe('decoupled weight decay (never applied to norms and biases)'),
        beta1: z.number().min(0).lt(1).default(0.9).describe('AdamW first-moment decay'),
        beta2: z.number().min(0).lt(1).default(0.999).describe('AdamW second-moment decay'),
        eps: z.number().positive().default(1e-8).describe('AdamW epsilon'),
        momentum: z.number().min(0).lt(1).default(0).describe('SGD momentum'),
        nesterov: z.boolean().default(false).describe('SGD Nesterov momentum'),
        maxGradNorm: z.number().positive().nullable().default(1).describe('clip the global gradient norm to this (null = no clipping)'),
        deterministic: z.boolean().default(true)
          .describe("the embedding gradient as one-hot matrix products, summed in a fixed order (true), or as onnxruntime's ScatterND (false: no N x V x D multiply-adds, but on the CPU its threads race and lose updates where token ids repeat in a large batch, and on GPUs it adds in a different order each run)"),
      })
      .strict()
      .prefault({})
      .describe('optimisation'),
    eval: z
      .object({
        every: z.number().int().min(0).default(0).describe('evaluate every N steps (0 = only at the end)'),
        batchSize: z.number().int().positive().default(16).describe('examples per eval batch'),
        maxExamples: z.number().int().positive().optional().describe('evaluate on at most this many held-out examples'),
        baseline: z.boolean().default(true).describe('evaluate before the first step (a step-0 record with the same metrics as later evaluations)'),
        earlyStopping: z
          .object({
            patience: z.number().int().positive().describe('stop after this many evaluations in a row without improving checkpoint.best.metric'),
            minDelta: z.number().min(0).default(0).describe('smallest change that counts as an improvement'),
          })
          .strict()
          .optional()
          .describe('stop the run when checkpoint.best.metric stops improving (needs checkpoint.best and eval.every)'),
        samples: z.array(z.string()).default([]).describe('prompts to generate from before and after training (greedy)'),
        maxNewTokens: z.number().int().positive().default(64).describe('tokens generated per sample'),
      })
      .strict()
      .prefault({})
      .describe('evaluation'),
    checkpoint: z
      .object({
        every: z.number().int().min(0).default(0).describe('save a resumable checkpoint every N steps (0 = only at the end)'),
        keep: z.number().int().positive().default(2).describe('checkpoints kept on disk'),
        best: z
          .object({
            metric: z.string().regex(/^(val|eval)_[a-z_]+$/, 'a metric of the evaluation, like "val_accuracy" or "val_loss"').describe('evaluation metric that picks the best checkpoint, e.g. val_accuracy'),
            mode: z.enum(['max', 'min']).optional().describe('higher or lower is better (default: min for *_loss and *_ppl, max otherwise)'),
          })
          .strict()
          .optional()
          .describe('keep the checkpoint with the best evaluation metric (checkpoints/best) and export it at the end instead of the last step'),
      })
      .strict()
      .prefault({})
      .describe('checkpoints'),
    export: z
      .object({
        merged: z
          .union([z.boolean(), z.literal('auto')])
          .default('auto')
          .describe("write export/model: a full model folder (safetensors + config + tokenizer) with adapters merged; 'auto' writes it when every plugin can be merged (prefix, prompt and bottleneck adapters cannot), true refuses such runs before they start"),
        adapters: z.boolean().default(true).describe("write each plugin's own artifacts (e.g. export/adapter, a PEFT LoRA adapter)"),
      })
      .strict()
      .prefault({})
      .describe('what is written at the end of a run'),
    memory: z
      .object({
        checkpointing: z.boolean().default(false).describe('activation checkpointing: keep only block outputs, recompute each block in the backward pass (less memory, ~1/3 more compute)'),
        budget: z
          .union([z.number().positive(), z.string().regex(/^\d+(\.\d+)?\s*(B|KB|MB|GB|KiB|MiB|GiB)$/i, 'a size like "4GB" or "512MiB"')])
          .optional()
          .describe('peak memory allowed for the run (number = MiB); the planner picks the micro-batch and checkpointing to fit, or refuses'),
        mmapThreshold: z
          .union([z.number().int().positive(), z.literal(false)])
          .default(1024 * 1024)
          .describe("glibc only: tensors of this many bytes or more get their own memory mapping, returned on free, so freed activations do not fragment the heap and the peak follows the plan (mixture-of-experts runs lower it below their per-expert tensors, down to 64 KiB); false keeps glibc's adaptive default (MALLOC_MMAP_THRESHOLD_ in the environment wins)"),
        arena: z
          .boolean()
          .default(false)
          .describe("one onnxruntime memory arena for all of the run's sessions in this process (Bun): memory a step frees is reused by the next instead of being unmapped and faulted in again. Faster (SmolLM2-135M 4x256: full fine-tuning +25% tokens/s, LoRA +11-28%; with train.optimizerOn 'device' the update is then fused into the step), at a peak above the plan (+15% full, +4% LoRA, +50% full with 'device'); the arena keeps its size until the process exits (docs/memory-planner.md)"),
      })
      .strict()
      .prefault({})
      .describe('memory: checkpointing, a budget the planner fits the run to, the allocator setting'),
    precision: z
      .object({
        weights: z
          .enum(['float32', 'float16', 'bfloat16'])
          .default('float32')
          .describe("storage of the frozen base weights: 'float16' or 'bfloat16' keeps each in 2 bytes per parameter (F16/BF16 checkpoints are read as they are, float32 ones rounded as they are read, a few MiB at a time) and widens it to float32 inside the graph right before use; trainable tensors, gradients and optimizer state stay float32, and base weights a plugin trains (full fine-tuning) stay float32; LISA is refused"),
      })
      .strict()
      .prefault({})
      .describe('numeric precision: how the frozen base weights are stored'),
    plugins: z.array(z.union([pluginObject, pluginReference])).default([]).describe('techniques, in order: e.g. [lora({ r: 8 })]'),
  })
  .strict();

export type TrainConfigInput = z.input<typeof trainConfigSchema>;
export type TrainConfig = z.output<typeof trainConfigSchema>;
export type PluginEntry = TrainConfig['plugins'][number];

/**
 * Types a config file. Every field is checked again at run time, with messages naming the path.
 *
 * ```ts
 * import { defineConfig } from 'tuneforge/core';
 * import { lora } from 'tuneforge/plugins/lora';
 * export default defineConfig({ model: 'HuggingFaceTB/SmolLM2-135M', data: { train: 'data.jsonl' }, plugins: [lora({ r: 8 })] });
 * ```
 */
export function defineConfig(config: TrainConfigInput): TrainConfigInput {
  return config;
}

/** Validates a config object; throws one error listing every problem with its field path. */
export function parseTrainConfig(value: unknown, source = 'config'): TrainConfig {
  const r = trainConfigSchema.safeParse(value);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
    throw new Error(`${source}: invalid config (${lines.length} problem${lines.length === 1 ? '' : 's'}):\n${lines.join('\n')}`);
  }
  return r.data;
}
