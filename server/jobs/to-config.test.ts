/** The mapping from an OpenAI job request to a run config: auto values, multipliers, the extension, every refusal. */
import { describe, expect, test } from 'bun:test';
import { parseTrainConfig } from '../../core/train/config.ts';
import { autoBatchSize, autoEpochs, BASE_LEARNING_RATES } from './auto.ts';
import { jobCreateSchema, parseJobRequest } from './schema.ts';
import { jobToRunConfig, type JobContext, type MappedJob } from './to-config.ts';
import type { Problem } from './problems.ts';

const LOCAL: Record<string, string> = { stories: '/srv/models/stories260k', misplaced: '/etc/models/other' };

function context(overrides: Partial<JobContext> = {}, policy: Partial<JobContext['policy']> = {}): JobContext {
  return {
    trainingPath: '/srv/files/file-train.jsonl',
    outputDir: '/srv/jobs/ftjob-1',
    policy: { allowedModelDirs: ['/srv/models'], offline: false, allowedPlugins: [], ...policy },
    resolveModel: (name) => LOCAL[name],
    ...overrides,
  };
}

/** Parses the body like the route does, then maps it. */
function map(body: Record<string, unknown>, ctx: JobContext = context()) {
  const parsed = parseJobRequest({ model: 'stories', training_file: 'file-train', ...body });
  if (!parsed.ok) throw new Error(`the test body is invalid: ${JSON.stringify(parsed.problems)}`);
  return jobToRunConfig(parsed.request, ctx);
}

function mapped(body: Record<string, unknown>, ctx?: JobContext): MappedJob {
  const r = map(body, ctx);
  if (!r.ok) throw new Error(`expected a mapping, got problems: ${JSON.stringify(r.problems)}`);
  return r.job;
}

function refused(body: Record<string, unknown>, ctx?: JobContext): Problem[] {
  const r = map(body, ctx);
  if (r.ok) throw new Error(`expected a refusal, got ${JSON.stringify(r.job.config)}`);
  return r.problems;
}

const params = (ps: Problem[]) => ps.map((p) => p.param).sort();

describe('auto rules', () => {
  test('epochs: 3, more for small files (OpenAI: ~100 examples seen, at most 25), fewer for big ones (~25 000)', () => {
    expect(autoEpochs(undefined)).toBe(3);
    expect(autoEpochs(1000)).toBe(3);
    expect(autoEpochs(10)).toBe(10);
    expect(autoEpochs(1)).toBe(25);
    expect(autoEpochs(10_000)).toBe(2);
    expect(autoEpochs(100_000)).toBe(1);
  });

  test('batch size: 8, never more than the examples, 16 and 32 for big files', () => {
    expect(autoBatchSize(undefined)).toBe(8);
    expect(autoBatchSize(5)).toBe(5);
    expect(autoBatchSize(7_999)).toBe(8);
    expect(autoBatchSize(8_000)).toBe(16);
    expect(autoBatchSize(16_000)).toBe(32);
    expect(autoBatchSize(1_000_000)).toBe(32);
  });
});

describe('mapping', () => {
  test('a bare request: LoRA r 8 / alpha 16 on every linear layer, auto values, absolute paths, a valid run config', () => {
    const job = mapped({}, context({ trainingExamples: 40 }));
    expect(job.plugins).toEqual([{ name: 'lora', options: { r: 8, alpha: 16, targets: 'all-linear' } }]);
    expect(job.config.model).toBe('/srv/models/stories260k');
    expect(job.config.output).toBe('/srv/jobs/ftjob-1');
    expect(job.config.data).toEqual({ train: '/srv/files/file-train.jsonl' });
    expect(job.config.train).toEqual({ epochs: 3, batchSize: 8, lr: BASE_LEARNING_RATES.lora! });
    expect(job.hyperparameters).toEqual({ n_epochs: 3, batch_size: 8, learning_rate_multiplier: 1 });
    expect(job.steps).toBe(15); // 3 epochs of ceil(40 / 8) batches
    expect(job.config.checkpoint).toEqual({ every: 5, keep: 3 }); // once per epoch
    expect(job.seed).toBe(0);
    const cfg = parseTrainConfig(job.config);
    expect(cfg.data.format).toBe('auto');
  });

  test('explicit hyperparameters (method form) and the multiplier scale the technique base rate', () => {
    const job = mapped({
      seed: 42,
      method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 2, batch_size: 4, learning_rate_multiplier: 0.5 } } },
      tuneforge: { plugins: ['full'] },
    });
    expect(job.config.train).toEqual({ epochs: 2, batchSize: 4, lr: BASE_LEARNING_RATES.full! * 0.5 });
    expect(job.config.seed).toBe(42);
    expect(job.plugins).toEqual([{ name: 'full', options: {} }]);
    expect(job.hyperparameters.learning_rate_multiplier).toBe(0.5);
  });

  test('the deprecated top-level hyperparameters work the same; auto values stay auto', () => {
    const job = mapped({ hyperparameters: { n_epochs: 'auto', batch_size: 2, learning_rate_multiplier: 'auto' }, tuneforge: { plugins: [{ name: 'prefix', options: { virtualTokens: 4 } }] } });
    expect(job.config.train).toEqual({ epochs: 3, batchSize: 2, lr: BASE_LEARNING_RATES.prefix! });
  });

  test('several techniques train at the most cautious base rate; only modifiers get the default LoRA added', () => {
    expect(mapped({ tuneforge: { plugins: ['prompt', 'lora'] } }).learningRate).toBe(BASE_LEARNING_RATES.lora!);
    expect(mapped({ tuneforge: { plugins: ['nf4'] } }).plugins.map((p) => (typeof p === 'string' ? p : p.name))).toEqual(['nf4', 'lora']);
    const zo = mapped({ tuneforge: { plugins: ['zo'] } });
    expect(zo.plugins.map((p) => (typeof p === 'string' ? p : p.name))).toEqual(['lora', 'zo']);
    expect(zo.learningRate).toBe(5e-5); // MeZO's LoRA rate
  });

  test('a validation file becomes data.eval, evaluated ~10 times over the run', () => {
    const job = mapped({ validation_file: 'file-val' }, context({ validationPath: '/srv/files/file-val.jsonl', trainingExamples: 80 }));
    expect(job.config.data).toEqual({ train: '/srv/files/file-train.jsonl', eval: '/srv/files/file-val.jsonl' });
    expect(job.steps).toBe(30);
    expect(job.config.eval).toEqual({ every: 3 });
  });

  test('the extension is merged over the mapped values, and its lr is reported as a multiplier', () => {
    const job = mapped({
      tuneforge: {
        plugins: [{ name: 'lora', options: { r: 4, targets: ['q_proj'] } }],
        train: { steps: 12, lr: 4e-4, schedule: 'cosine', warmupSteps: 2 },
        data: { maxLength: 64, trainOn: 'last-assistant' },
        checkpoint: { every: 3 },
        export: { merged: false },
        eval: { samples: ['Once upon a time'] },
      },
    }, context({ trainingExamples: 32 }));
    expect(job.config.train).toEqual({ batchSize: 8, lr: 4e-4, steps: 12, schedule: 'cosine', warmupSteps: 2 });
    expect(job.config.data).toEqual({ train: '/srv/files/file-train.jsonl', maxLength: 64, trainOn: 'last-assistant' });
    expect(job.config.checkpoint).toEqual({ every: 3, keep: 3 });
    expect(job.config.export).toEqual({ merged: false });
    expect(job.hyperparameters).toEqual({ n_epochs: 3, batch_size: 8, learning_rate_multiplier: 2 });
    expect(job.steps).toBe(12);
    parseTrainConfig(job.config);
  });

  test('the server memory budget becomes memory.budget; a request may lower it', () => {
    const ctx = context({}, { memoryBudget: '4GB' });
    expect(mapped({}, ctx).config.memory).toEqual({ budget: '4GB' });
    expect(mapped({ tuneforge: { memory: { budget: 1024 } } }, ctx).config.memory).toEqual({ budget: 1024 });
    expect(params(refused({ tuneforge: { memory: { budget: '8GB' } } }, ctx))).toEqual(['tuneforge.memory.budget']);
  });

  test('Hub ids are taken as they are when the server is online', () => {
    expect(mapped({ model: 'HuggingFaceTB/SmolLM2-135M@main' }).config.model).toBe('HuggingFaceTB/SmolLM2-135M@main');
  });
});

describe('refusals', () => {
  test.each(['/srv/models/stories260k', './stories', '../shared/models/stories260k', '~/models/x', 'C:\\models', 'owner/..'])('a path as model (%s)', (model) => {
    const ps = refused({ model });
    expect(params(ps)).toEqual(['model']);
    expect(ps[0]!.message).toMatch(/is a path|unknown model/);
  });

  test('a Hub id when offline, with what to do instead', () => {
    const ps = refused({ model: 'HuggingFaceTB/SmolLM2-135M' }, context({}, { offline: true }));
    expect(ps).toEqual([{ param: 'model', message: expect.stringMatching(/offline.*allowed local model/) }]);
  });

  test('an unknown name, and a name the server maps outside its allowed folders', () => {
    expect(refused({ model: 'gpt-4o-mini' })[0]!.message).toMatch(/unknown model 'gpt-4o-mini'/);
    expect(refused({ model: 'misplaced' })[0]!.message).toMatch(/outside its allowed model folders/);
  });

  test('plugins off the allow-list, as paths, as objects with hooks, with bad options', () => {
    const ps = refused({ tuneforge: { plugins: ['evil-plugin', './my-plugin.ts', '/abs/plugin.js', 'file:///x.js', { name: 'lora', hooks: {} }, { name: 'lora', options: { r: -1 } }] } });
    expect(params(ps)).toEqual(['tuneforge.plugins[0]', 'tuneforge.plugins[1]', 'tuneforge.plugins[2]', 'tuneforge.plugins[3]', 'tuneforge.plugins[4]', 'tuneforge.plugins[5].options']);
    expect(ps[0]!.message).toMatch(/not available on this server \(built-ins: full, lora/);
    expect(ps[1]!.message).toMatch(/is a path: a request may not load code/);
    expect(ps[4]!.message).toMatch(/as a name .* or as \{ "name"/);
  });

  test('a package on the allow-list is accepted (not loaded here), one off it is not', () => {
    const ctx = context({}, { allowedPlugins: ['@acme/tuneforge-plugin'] });
    const job = mapped({ tuneforge: { plugins: ['@acme/tuneforge-plugin', 'lora'] } }, ctx);
    expect(job.plugins).toEqual([{ name: '@acme/tuneforge-plugin', options: {} }, { name: 'lora', options: {} }]);
    expect(params(refused({ tuneforge: { plugins: ['@acme/other'] } }, ctx))).toEqual(['tuneforge.plugins[0]']);
    // A package alone has no known base learning rate: the request must give the rate.
    expect(refused({ tuneforge: { plugins: ['@acme/tuneforge-plugin'] } }, ctx)).toEqual([{ param: 'tuneforge.train.lr', message: expect.stringMatching(/has a default learning rate: set the learning rate itself here/) }]);
  });

  test('the extension may not choose the model, the output, the data files, a task or the seed', () => {
    const ps = refused({
      tuneforge: { model: '/etc', output: '/tmp/x', seed: 1, task: { choice: {} }, data: { train: '/etc/passwd', eval: ['/etc/shadow'] }, unknown: {} },
    });
    expect(params(ps)).toEqual(['tuneforge.data.eval', 'tuneforge.data.train', 'tuneforge.model', 'tuneforge.output', 'tuneforge.seed', 'tuneforge.task', 'tuneforge.unknown']);
    expect(ps.find((p) => p.param === 'tuneforge.output')!.message).toMatch(/server chooses the run folder/);
    expect(ps.find((p) => p.param === 'tuneforge.data.train')!.message).toMatch(/training_file/);
  });

  test('bad extension fields are named by their path in the request', () => {
    const ps = refused({ tuneforge: { train: { lr: -1, optimiser: 'adam' }, data: { maxLength: 'long' } } });
    expect(params(ps)).toEqual(['tuneforge.data.maxLength', 'tuneforge.train', 'tuneforge.train.lr']);
  });

  test('an explicit hyperparameter and the same setting in the extension conflict', () => {
    const ps = refused({ hyperparameters: { n_epochs: 2, batch_size: 4, learning_rate_multiplier: 2 }, tuneforge: { train: { steps: 5, batchSize: 2, lr: 1e-3 } } });
    expect(params(ps)).toEqual(['tuneforge.train.batchSize', 'tuneforge.train.lr', 'tuneforge.train.steps']);
    expect(ps[0]!.message).toMatch(/conflicts with hyperparameters\.\w+: set one of them/);
  });

  test('several problems at once: every one is reported', () => {
    const ps = refused({
      model: '/etc/models',
      method: { type: 'dpo', dpo: { hyperparameters: { beta: 0.1 } } },
      hyperparameters: { n_epochs: 2 },
      integrations: [{ type: 'wandb', wandb: { project: 'p' } }],
      validation_file: 'file-missing',
      tuneforge: { plugins: ['./x.ts'], output: '/tmp' },
    });
    expect(params(ps)).toEqual(['integrations', 'method.type', 'model', 'tuneforge.output', 'tuneforge.plugins[0]', 'validation_file']);
    expect(ps.find((p) => p.param === 'method.type')!.message).toMatch(/'dpo' fine-tuning is not supported.*use 'supervised'/);
  });

  test('hyperparameters given twice are refused', () => {
    const ps = refused({ hyperparameters: { n_epochs: 2 }, method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 3 } } } });
    expect(params(ps)).toEqual(['hyperparameters']);
  });
});

describe('the request schema', () => {
  test('strict about types, every problem with its param', () => {
    const r = parseJobRequest({
      model: 3, training_file: '', seed: 1.5, suffix: 'a:b',
      hyperparameters: { n_epochs: '3', batch_size: 0, learning_rate_multiplier: -1, warmup: 1 },
      metadata: { k: 7 }, tuneforge: 'lora',
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect([...new Set(params(r.problems))]).toEqual([
      'hyperparameters', 'hyperparameters.batch_size', 'hyperparameters.learning_rate_multiplier', 'hyperparameters.n_epochs',
      'metadata.k', 'model', 'seed', 'suffix', 'training_file', 'tuneforge',
    ]);
  });

  test('lenient about unknown top-level fields; nulls where OpenAI allows them', () => {
    const r = jobCreateSchema.safeParse({ model: 'm', training_file: 'f', some_future_field: { x: 1 }, seed: null, suffix: null, validation_file: null, integrations: null, metadata: null });
    expect(r.success).toBe(true);
  });

  test('metadata: at most 16 pairs', () => {
    const metadata = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
    const r = parseJobRequest({ model: 'm', training_file: 'f', metadata });
    expect(r.ok ? [] : params(r.problems)).toEqual(['metadata']);
  });
});
