/** Everything the routes and the worker loop share: settings, the store, the home folder's layout, the policies. */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadApiKeys } from './auth.ts';
import { serverConfigSchema, type ServerConfig, type ServerConfigInput } from './config.ts';
import { EventHub } from './events.ts';
import { newEventId, nowSeconds } from './ids.ts';
import { modelPolicy, type ModelPolicy } from './models.ts';
import { openStore, type Store } from './store/index.ts';
import type { EventRecord } from './store/types.ts';

export interface Service {
  readonly config: ServerConfig;
  readonly store: Store;
  /** home: the store (SQLite), uploads (`files/<id>.jsonl`), job folders (`jobs/<id>`: the run, its checkpoints, exports). */
  readonly paths: { readonly home: string; readonly files: string; readonly jobs: string };
  readonly models: ModelPolicy;
  readonly hub: EventHub;
  readonly keys: readonly string[];
  /** Adds an event to a job and wakes its streams. */
  event(jobId: string, level: EventRecord['level'], message: string, type?: EventRecord['type'], data?: Record<string, unknown> | null): Promise<EventRecord>;
  log(line: string): void;
  close(): Promise<void>;
}

export async function createService(input: ServerConfigInput, log: (line: string) => void = (l) => console.error(l)): Promise<Service> {
  const config = serverConfigSchema.parse(input);
  const home = resolve(config.home);
  const paths = { home, files: join(home, 'files'), jobs: join(home, 'jobs') };
  for (const dir of Object.values(paths)) mkdirSync(dir, { recursive: true });
  const keys = loadApiKeys(config.apiKeys, config.apiKeysFile);
  const models = modelPolicy(config.allowModels, config.offline);
  const store = await openStore(config.store ?? join(home, 'store.sqlite'));
  const hub = new EventHub();
  return {
    config, store, paths, models, hub, keys, log,
    async event(jobId, level, message, type = 'message', data = null) {
      const e = await store.addEvent({ id: newEventId(), job_id: jobId, created_at: nowSeconds(), level, message, type, data });
      hub.notify(jobId);
      return e;
    },
    close: () => store.close(),
  };
}
