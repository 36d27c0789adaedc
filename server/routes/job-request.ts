/**
 * From a job-create body to a run: the body checked, its files resolved (uploaded, for fine-tuning, validated or
 * still validating), the model and plugins checked against the server's allow-lists, the tuneforge run config built
 * (`jobToRunConfig`), and, when the server has a memory budget, the run planned against it. Shared by job creation
 * and `POST /v1/plans`, so a plan is always the plan of the job that would be created.
 */
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fitToBudget, parseBudget, BudgetError, type MemoryPlan } from '../../core/memory/index.ts';
import { parseTrainConfig } from '../../core/train/config.ts';
import { resolvePlugins } from '../../core/train/load-config.ts';
import { PACKAGE_ROOT } from '../worker/plugins.ts';
import { loadPlanData, plannerForData } from '../../core/train/plan-run.ts';
import { BUILTIN_PLUGINS } from '../../plugins/index.ts';
import { ApiError, invalid } from '../errors.ts';
import { filePath } from '../files/paths.ts';
import { ID_PATTERN } from '../ids.ts';
import { parseJobRequest, type JobCreateRequest } from '../jobs/schema.ts';
import { jobToRunConfig, type MappedJob } from '../jobs/to-config.ts';
import type { Service } from '../service.ts';
import type { FileRecord } from '../store/types.ts';

export interface PreparedJob {
  request: JobCreateRequest;
  training: FileRecord;
  validation?: FileRecord;
  /** The run config (JSON, plugins as references) the worker trains. */
  config: Record<string, unknown>;
  mapped: MappedJob;
}

/** Non-empty lines of a JSONL upload (the "auto" hyperparameters scale with it), read as a stream. */
async function countRecords(path: string): Promise<number | undefined> {
  if (!existsSync(path)) return undefined;
  let records = 0, inLine = false;
  for await (const chunk of createReadStream(path)) {
    for (const byte of chunk as Buffer) {
      if (byte === 10) {
        if (inLine) records++;
        inLine = false;
      } else if (byte !== 13 && byte !== 32) inLine = true;
    }
  }
  return records + (inLine ? 1 : 0);
}

async function fineTuneFile(svc: Service, id: string | null | undefined, param: string): Promise<FileRecord | undefined> {
  if (id === null || id === undefined) return undefined;
  const f = ID_PATTERN.test(id) ? await svc.store.getFile(id) : undefined;
  if (!f) throw new ApiError(400, `${param}: no uploaded file with id '${id}'`, param, 'invalid_file');
  if (f.purpose !== 'fine-tune') throw new ApiError(400, `${param}: file ${id} was uploaded with purpose '${f.purpose}'; upload it with purpose 'fine-tune'`, param, 'invalid_file_purpose');
  if (f.status === 'error') throw new ApiError(400, `${param}: file ${id} failed validation: ${f.status_details}`, param, 'invalid_file');
  return f;
}

export async function prepareJob(svc: Service, body: unknown, jobId: string): Promise<PreparedJob> {
  const parsed = parseJobRequest(body);
  if (!parsed.ok) throw invalid(parsed.problems);
  const request = parsed.request;
  const training = (await fineTuneFile(svc, request.training_file, 'training_file'))!;
  const validation = await fineTuneFile(svc, request.validation_file, 'validation_file');
  const mapped = jobToRunConfig(request, {
    trainingPath: filePath(svc, training.id),
    validationPath: validation ? filePath(svc, validation.id) : undefined,
    outputDir: join(svc.paths.jobs, jobId),
    policy: { allowedModelDirs: [...new Set(svc.models.local.values())], offline: svc.models.offline, allowedPlugins: svc.config.allowPlugins, memoryBudget: svc.config.memoryBudget },
    defaultSeed: Math.floor(Math.random() * 2 ** 31),
    trainingExamples: await countRecords(filePath(svc, training.id)),
    resolveModel: (name) => {
      const r = svc.models.resolve(name);
      return 'model' in r ? r.model.dir : undefined;
    },
  });
  if (!mapped.ok) throw invalid(mapped.problems);
  return { request, training, validation, config: mapped.job.config as Record<string, unknown>, mapped: mapped.job };
}

/** The run's memory plan (fitted to the server's budget when it has one); refuses a job that cannot fit. */
export async function planJob(svc: Service, job: PreparedJob): Promise<MemoryPlan> {
  const config = parseTrainConfig(job.config);
  // Resolved where the worker resolves them (the request's names were checked against the allow-list already).
  const plugins = await resolvePlugins(config.plugins, { builtins: BUILTIN_PLUGINS, baseDir: PACKAGE_ROOT });
  let planner;
  try {
    // Sized by the uploaded data as the worker's run will be (its lengths, batch shapes and bytes): a pass over the
    // training file in a child process, like `tuneforge plan`.
    planner = await plannerForData(config, plugins, await loadPlanData(config, () => {}));
  } catch (e) {
    throw new ApiError(400, `the job cannot be planned: ${(e as Error).message}`, 'tuneforge', 'invalid_config');
  }
  const budget = svc.config.memoryBudget;
  if (budget === undefined) return planner.plan();
  try {
    return fitToBudget(planner, config.train.batchSize, parseBudget(budget));
  } catch (e) {
    if (e instanceof BudgetError) throw new ApiError(400, `the job does not fit this server's memory budget of ${budget}: ${e.message}`, 'tuneforge.memory', 'memory_budget_exceeded');
    throw e;
  }
}
