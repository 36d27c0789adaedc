/**
 * The models completions may name, and where each one's files are: the allowed local base models (by folder name),
 * Hub ids when the server is online (through the model policy), and fine-tuned models (`ft:<base>:<suffix>:<job>`,
 * through the store: the base model plus the job's exported adapter). A request names a model, never a path.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ApiError } from '../errors.ts';
import type { Service } from '../service.ts';
import type { JobRecord } from '../store/types.ts';

/** A model as `/v1/models` shows it. */
export interface ModelObject {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/** What it takes to load a model for generation. */
export interface ModelTarget {
  /** The name requests use. */
  readonly id: string;
  /** The base model: a local folder or a Hub id. */
  readonly source: string;
  /** A PEFT adapter folder (any technique) put on the base model. */
  readonly adapter?: string;
  /** The chat template the model was trained with, when its job named one (else the tokenizer's own). */
  readonly chatTemplate?: string;
  /** Loaded generators are shared by this key: two names of one folder load it once. */
  readonly key: string;
}

const modelNotFound = (message: string): ApiError => new ApiError(404, message, 'model', 'model_not_found');

const createdOf = (dir: string): number => Math.floor(statSync(join(dir, 'config.json')).mtimeMs / 1000);

/** The allowed local folders, one entry each, named by folder name (by the path as given when two share a name). */
function localModels(svc: Service): { id: string; dir: string }[] {
  const byDir = new Map<string, string>();
  for (const [name, dir] of svc.models.local) {
    const current = byDir.get(dir);
    if (current === undefined || name === basename(dir)) byDir.set(dir, name);
  }
  return [...byDir].map(([dir, id]) => ({ id, dir }));
}

/** Everything `/v1/models` lists: local base models first, then fine-tuned models, newest first. */
export async function listModels(svc: Service): Promise<ModelObject[]> {
  const local = localModels(svc).map(({ id, dir }): ModelObject => ({ id, object: 'model', created: createdOf(dir), owned_by: 'system' }));
  const tuned = (await svc.store.fineTunedModels()).map((m): ModelObject => ({ id: m.id, object: 'model', created: m.created_at, owned_by: 'organization-owner' }));
  return [...local, ...tuned];
}

/** One listed model, or undefined (Hub ids are usable but not listed: nothing about them is known until loaded). */
export async function findModel(svc: Service, id: string): Promise<ModelObject | undefined> {
  if (isFineTuned(id)) {
    const job = await svc.store.jobByModel(id);
    return job?.status === 'succeeded' ? { id, object: 'model', created: job.finished_at ?? job.created_at, owned_by: 'organization-owner' } : undefined;
  }
  // Any name completions accept for a local folder (its folder name, or the path as given to --allow-model).
  const dir = svc.models.local.get(id);
  return dir ? { id, object: 'model', created: createdOf(dir), owned_by: 'system' } : undefined;
}

const isFineTuned = (name: string): boolean => name.startsWith('ft:');

/** The model a completion names, or a 404 `model_not_found` that says why. */
export async function resolveTarget(svc: Service, name: string): Promise<ModelTarget> {
  if (isFineTuned(name)) return fineTunedTarget(svc, name);
  const r = svc.models.resolve(name);
  if ('error' in r) throw modelNotFound(r.error);
  const source = r.model.dir ?? r.model.id;
  return { id: name, source, key: source };
}

async function fineTunedTarget(svc: Service, name: string): Promise<ModelTarget> {
  const job = await svc.store.jobByModel(name);
  if (!job || job.status !== 'succeeded') throw modelNotFound(`unknown fine-tuned model '${name}' (GET /v1/models lists the models this server has)`);
  const base = svc.models.resolve(job.model);
  if ('error' in base) throw modelNotFound(`the base model of '${name}' may not be used on this server now: ${base.error}`);
  const adapter = join(svc.paths.jobs, job.id, 'export', 'adapter');
  if (!existsSync(join(adapter, 'adapter_config.json'))) throw modelNotFound(`fine-tuned model '${name}' has no exported adapter (its job ${job.id} wrote none)`);
  const source = base.model.dir ?? base.model.id;
  const chatTemplate = trainedChatTemplate(job);
  return { id: name, source, adapter, key: `${source}+${adapter}`, ...(chatTemplate !== undefined ? { chatTemplate } : {}) };
}

/** The run config's `data.chatTemplate`: chats at inference must be rendered the way the model was trained on them. */
function trainedChatTemplate(job: JobRecord): string | undefined {
  const data = job.config['data'];
  if (typeof data !== 'object' || data === null) return undefined;
  const t = (data as Record<string, unknown>)['chatTemplate'];
  return typeof t === 'string' ? t : undefined;
}
