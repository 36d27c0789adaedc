/**
 * An OpenAI job-create request → a tuneforge run config. Pure: no file is read and nothing is loaded (built-in
 * plugins only parse their options), so the route can refuse a bad request before anything is queued, with every
 * problem at once. The worker then trains `config` as it is (server/worker/run.ts).
 *
 * Mapping: `model` → `model` (model.ts); `n_epochs` → `train.epochs`, `batch_size` → `train.batchSize`,
 * `learning_rate_multiplier` × the technique's base rate → `train.lr` ("auto" rules in auto.ts); `seed` → `seed`;
 * the files → `data.train` / `data.eval` (record format detected per file); `tuneforge` → merged over the result
 * (extension.ts, plugins.ts). Without plugins the technique is LoRA r 8, alpha 16, on every linear layer.
 */
import { resolve } from 'node:path';
import { trainConfigSchema, type TrainConfigInput } from '../../core/train/config.ts';
import { autoBatchSize, autoEpochs, baseLearningRate } from './auto.ts';
import { checkExtension, SECTIONS, type Section, type Sections } from './extension.ts';
import { mapModel, type ModelPolicy } from './model.ts';
import { entryName, mapPlugins, type JsonPluginEntry } from './plugins.ts';
import { formatParam, type Problem } from './problems.ts';
import type { JobCreateRequest, JobHyperparameters } from './schema.ts';

export interface JobPolicy extends ModelPolicy {
  /** Plugin packages a request may name beyond the built-ins. */
  allowedPlugins: readonly string[];
  /** The worker's memory (number = MiB, or "8GB"): becomes `memory.budget`, which a request may only lower. */
  memoryBudget?: number | string;
}

export interface JobContext {
  /** The uploaded files' paths on this machine (made absolute: the worker runs in an empty folder). */
  trainingPath: string;
  validationPath?: string;
  /** The job's run folder: metrics, checkpoints, exports. */
  outputDir: string;
  policy: JobPolicy;
  /** An allowed model name → its local folder; undefined for anything else (a Hub id when online). */
  resolveModel(name: string): string | undefined;
  /** Records in the training file, when known (the upload's line count): the "auto" rules scale with it. */
  trainingExamples?: number;
  /** The seed of a request without one (OpenAI generates one: pass a random one and report it in the job). */
  defaultSeed?: number;
}

/** The values the job object reports as its hyperparameters (OpenAI shows the resolved ones, not "auto"). */
export interface ResolvedHyperparameters {
  n_epochs: number;
  batch_size: number;
  learning_rate_multiplier: number;
}

export interface MappedJob {
  /** A run config as JSON (plugins as JSON entries); paths are absolute. */
  config: TrainConfigInput & { plugins: JsonPluginEntry[] };
  plugins: JsonPluginEntry[];
  hyperparameters: ResolvedHyperparameters;
  /** The peak learning rate of the run. */
  learningRate: number;
  seed: number;
  /** Optimizer steps, when the training file's size is known or `tuneforge.train.steps` is set. */
  steps?: number;
}

export type JobMapping = { ok: true; job: MappedJob } | { ok: false; problems: Problem[] };

/** Checkpoints at least this often, so a crash (or a restarted service) repeats little work. */
const MAX_CHECKPOINT_INTERVAL = 100;
/** Checkpoints kept: OpenAI keeps those of the last 3 epochs. */
const CHECKPOINTS_KEPT = 3;
/** Validation loss is computed this many times in a run with a validation file (OpenAI reports it periodically). */
const EVALS_PER_RUN = 10;

/** The hyperparameters and the field they came from (OpenAI's new place, or the deprecated top-level one). */
function hyperparametersOf(req: JobCreateRequest, problems: Problem[]): { hp: JobHyperparameters; param: string } {
  const fromMethod = req.method?.supervised?.hyperparameters;
  const legacy = req.hyperparameters;
  if (fromMethod && legacy && Object.keys(fromMethod).length && Object.keys(legacy).length) {
    problems.push({ param: 'hyperparameters', message: 'give the hyperparameters once, in method.supervised.hyperparameters (the top-level field is the deprecated form of it)' });
  }
  if (fromMethod) return { hp: fromMethod, param: 'method.supervised.hyperparameters' };
  return { hp: legacy ?? {}, param: 'hyperparameters' };
}

/** An explicit OpenAI value and the same setting in the extension: one of them would be ignored, so both are refused. */
function conflicts(hp: JobHyperparameters, hpParam: string, train: Record<string, unknown> | undefined, problems: Problem[]): void {
  const pairs: [keyof JobHyperparameters, string][] = [['n_epochs', 'epochs'], ['n_epochs', 'steps'], ['batch_size', 'batchSize'], ['learning_rate_multiplier', 'lr']];
  for (const [openai, field] of pairs) {
    if (hp[openai] === undefined || hp[openai] === 'auto' || train?.[field] === undefined) continue;
    problems.push({ param: `tuneforge.train.${field}`, message: `conflicts with ${hpParam}.${openai}: set one of them (or make ${openai} "auto")` });
  }
}

/** Where a problem of the merged config came from: the extension when it set that field, else the mapping. */
function configParam(path: readonly PropertyKey[], sections: Sections): string {
  const [section, field] = path;
  if (section === 'plugins') return formatParam(['tuneforge', ...path]);
  const ext = (SECTIONS as readonly PropertyKey[]).includes(section ?? '') ? sections[section as Section] : undefined;
  return ext && typeof field === 'string' && field in ext ? formatParam(['tuneforge', ...path]) : formatParam(['config', ...path]);
}

export function jobToRunConfig(req: JobCreateRequest, ctx: JobContext): JobMapping {
  const problems: Problem[] = [];
  if (req.method && req.method.type !== 'supervised') {
    problems.push({ param: 'method.type', message: `'${req.method.type}' fine-tuning is not supported by this server: use 'supervised'` });
  }
  if (req.integrations?.length) {
    problems.push({ param: 'integrations', message: 'this server reports to no third party (Weights & Biases is not supported): remove integrations' });
  }
  const { hp, param: hpParam } = hyperparametersOf(req, problems);

  const model = mapModel(req.model, ctx.policy, ctx.resolveModel);
  if ('error' in model) problems.push({ param: 'model', message: model.error });
  const validation = req.validation_file ?? undefined;
  if (validation !== undefined && ctx.validationPath === undefined) {
    problems.push({ param: 'validation_file', message: `no uploaded file '${validation}' to validate on: upload it with purpose fine-tune` });
  }

  const { plugins, problems: pluginProblems } = mapPlugins(req.tuneforge?.plugins, ctx.policy.allowedPlugins);
  problems.push(...pluginProblems);
  const { sections, problems: extProblems } = checkExtension(req.tuneforge, ctx.policy.memoryBudget);
  problems.push(...extProblems);
  conflicts(hp, hpParam, sections.train, problems);

  const examples = ctx.trainingExamples;
  const epochs = hp.n_epochs === undefined || hp.n_epochs === 'auto' ? autoEpochs(examples) : hp.n_epochs;
  const batchSize = hp.batch_size === undefined || hp.batch_size === 'auto' ? autoBatchSize(examples) : hp.batch_size;
  const multiplier = hp.learning_rate_multiplier === undefined || hp.learning_rate_multiplier === 'auto' ? 1 : hp.learning_rate_multiplier;
  const extLr = sections.train?.lr;
  const base = baseLearningRate(plugins.map(entryName));
  let lr = 0;
  if (typeof extLr === 'number') lr = extLr;
  else if ('lr' in base) lr = base.lr * multiplier;
  else if (!pluginProblems.length) problems.push({ param: 'tuneforge.train.lr', message: `${base.error}: set the learning rate itself here` });

  // The schedule of checkpoints and evaluations follows the run's length when it is known.
  const effectiveBatch = typeof sections.train?.batchSize === 'number' ? sections.train.batchSize : batchSize;
  const stepsPerEpoch = examples && examples > 0 ? Math.ceil(examples / effectiveBatch) : undefined;
  const extSteps = typeof sections.train?.steps === 'number' ? sections.train.steps : undefined;
  const extEpochs = typeof sections.train?.epochs === 'number' ? sections.train.epochs : undefined;
  const steps = extSteps ?? (stepsPerEpoch === undefined ? undefined : Math.ceil((extEpochs ?? epochs) * stepsPerEpoch));
  const checkpointEvery = Math.min(stepsPerEpoch ?? MAX_CHECKPOINT_INTERVAL, MAX_CHECKPOINT_INTERVAL);
  const evalEvery = validation !== undefined && steps !== undefined ? Math.max(1, Math.ceil(steps / EVALS_PER_RUN)) : 0;
  const seed = req.seed ?? ctx.defaultSeed ?? 0;

  // With `steps` from the extension the mapped epochs are left out (the trainer's steps win over epochs anyway).
  const train: Record<string, unknown> = { ...(extSteps === undefined ? { epochs } : {}), batchSize, lr, ...sections.train };
  const config: TrainConfigInput & { plugins: JsonPluginEntry[] } = {
    model: 'source' in model ? model.source : req.model,
    output: resolve(ctx.outputDir),
    seed,
    data: { train: resolve(ctx.trainingPath), ...(ctx.validationPath !== undefined && validation !== undefined ? { eval: resolve(ctx.validationPath) } : {}), ...sections.data },
    train,
    eval: { every: evalEvery, ...sections.eval },
    checkpoint: { every: checkpointEvery, keep: CHECKPOINTS_KEPT, ...sections.checkpoint },
    export: { ...sections.export },
    memory: { ...(ctx.policy.memoryBudget !== undefined ? { budget: ctx.policy.memoryBudget } : {}), ...sections.memory },
    plugins,
  };
  if (problems.length) return { ok: false, problems };

  // Each part was checked above; this catches what only the whole config can tell (and keeps the two in step).
  const whole = trainConfigSchema.safeParse(config);
  if (!whole.success) return { ok: false, problems: whole.error.issues.map((i) => ({ param: configParam(i.path, sections), message: i.message })) };

  const reportedEpochs = extSteps !== undefined && stepsPerEpoch !== undefined ? Math.round((extSteps / stepsPerEpoch) * 100) / 100 : (extEpochs ?? epochs);
  const reportedMultiplier = typeof extLr === 'number' ? ('lr' in base ? extLr / base.lr : 1) : multiplier;
  return {
    ok: true,
    job: {
      config,
      plugins,
      hyperparameters: { n_epochs: reportedEpochs, batch_size: effectiveBatch, learning_rate_multiplier: reportedMultiplier },
      learningRate: lr,
      seed,
      ...(steps !== undefined ? { steps } : {}),
    },
  };
}
