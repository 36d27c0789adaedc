/**
 * The body of `POST /v1/fine_tuning/jobs`: every field of OpenAI's `JobCreateParams` (openai-node
 * `resources/fine-tuning/jobs/jobs.ts`, `methods.ts`) plus the `tuneforge` extension. Types are checked strictly (a
 * string where a number belongs is refused, never coerced); unknown top-level fields are kept and ignored, so a
 * newer OpenAI client that sends a field this server does not know still works. Nested hyperparameter objects are
 * strict: silently ignoring a training setting would train something other than what was asked for.
 *
 * What the values mean for a run (and what is refused: other methods, integrations, paths) is `to-config.ts`'s job.
 */
import { z } from 'zod';
import { issuesToProblems, type Problem } from './problems.ts';

const auto = <T extends z.ZodType>(value: T) => z.union([z.literal('auto'), value]);

/** OpenAI's ranges: 1-50 epochs, batches of 1-256 examples, a positive learning-rate multiplier. */
const hyperparametersSchema = z
  .object({
    n_epochs: auto(z.number().int().min(1).max(50)).optional().describe("epochs over the training file, or 'auto'"),
    batch_size: auto(z.number().int().min(1).max(256)).optional().describe("examples per optimizer step, or 'auto'"),
    learning_rate_multiplier: auto(z.number().positive()).optional().describe("times the technique's base learning rate, or 'auto' (1)"),
  })
  .strict();

const dpoHyperparametersSchema = hyperparametersSchema.extend({ beta: auto(z.number().positive()).optional() }).strict();

export const methodSchema = z
  .object({
    type: z.enum(['supervised', 'dpo', 'reinforcement']),
    supervised: z.object({ hyperparameters: hyperparametersSchema.optional() }).strict().optional(),
    dpo: z.object({ hyperparameters: dpoHyperparametersSchema.optional() }).strict().optional(),
    // Accepted so the refusal can say "reinforcement is not supported" instead of listing grader fields.
    reinforcement: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

const integrationSchema = z
  .object({
    type: z.literal('wandb'),
    wandb: z
      .object({
        project: z.string(),
        entity: z.string().nullish(),
        name: z.string().nullish(),
        tags: z.array(z.string()).optional(),
      })
      .strict(),
  })
  .strict();

/** OpenAI's metadata: at most 16 pairs, keys up to 64 characters, values up to 512. */
const metadataSchema = z
  .record(z.string().max(64, 'metadata keys are at most 64 characters'), z.string().max(512, 'metadata values are at most 512 characters'))
  .refine((m) => Object.keys(m).length <= 16, { message: 'metadata holds at most 16 key-value pairs' });

/** Sections of a run config (core/train/config.ts) the extension may set; checked field by field by to-config.ts. */
const sectionSchema = z.record(z.string(), z.unknown());

/**
 * `tuneforge`: a fragment of a tuneforge run config merged over what the OpenAI fields map to. Its contents are
 * checked by `jobToRunConfig` (which says, for instance, why `output` may not be set), so any object passes here.
 */
export const tuneforgeExtensionSchema = z
  .looseObject({
    plugins: z.array(z.unknown()).optional().describe('techniques: built-in names or { name, options }, e.g. [{ "name": "lora", "options": { "r": 16 } }]'),
    train: sectionSchema.optional(),
    data: sectionSchema.optional(),
    eval: sectionSchema.optional(),
    checkpoint: sectionSchema.optional(),
    export: sectionSchema.optional(),
    memory: sectionSchema.optional(),
  })
  .describe('a tuneforge run config fragment (plugins, train, data, eval, checkpoint, export, memory)');

export const jobCreateSchema = z.looseObject({
  model: z.string().min(1, 'name the model to fine-tune'),
  training_file: z.string().min(1, 'give the id of an uploaded file (purpose fine-tune)'),
  validation_file: z.string().min(1).nullish(),
  hyperparameters: hyperparametersSchema.optional().describe('deprecated by OpenAI in favour of method.supervised.hyperparameters'),
  method: methodSchema.optional(),
  integrations: z.array(integrationSchema).nullish(),
  metadata: metadataSchema.nullish(),
  seed: z.number().int().min(0).max(2_147_483_647).nullish(),
  // Goes into the fine-tuned model's name (`ft:<model>:<org>:<suffix>:<id>`), so no ':' or '/'.
  suffix: z
    .string()
    .max(64, 'suffix is at most 64 characters')
    .regex(/^[A-Za-z0-9._-]*$/, 'suffix may hold letters, digits, ".", "_" and "-" only')
    .nullish(),
  tuneforge: tuneforgeExtensionSchema.optional(),
});

export type JobCreateRequest = z.output<typeof jobCreateSchema>;
export type JobHyperparameters = z.output<typeof hyperparametersSchema>;
export type TuneforgeExtension = z.output<typeof tuneforgeExtensionSchema>;

/** Validates a request body; the problems name the fields as OpenAI's `param` does. */
export function parseJobRequest(body: unknown): { ok: true; request: JobCreateRequest } | { ok: false; problems: Problem[] } {
  const r = jobCreateSchema.safeParse(body);
  return r.success ? { ok: true, request: r.data } : { ok: false, problems: issuesToProblems(r.error) };
}
