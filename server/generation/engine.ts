/**
 * The service's loaded generators: one pool per `Service`, so every app built on it shares them, and the least
 * recently used model is released when a third one is asked for. `releaseGenerators(svc)` frees them at shutdown.
 *
 * ```ts
 * const lease = await generators(svc).acquire(target);
 * try { await lease.value.queue.run(() => ...); } finally { lease.release(); }
 * ```
 */
import type { Service } from '../service.ts';
import type { ModelTarget } from './catalog.ts';
import { GENERATION_LIMITS } from './limits.ts';
import { loadTarget, type LoadedModel } from './load.ts';
import { LruPool, type Lease } from './lru-pool.ts';

export interface Generators {
  /** The loaded model of `target` (loading it on first use); release the lease when done with it. */
  acquire(target: ModelTarget): Promise<Lease<LoadedModel>>;
  /** Keys of the models loaded or loading, least recently used first. */
  loaded(): string[];
}

const pools = new WeakMap<Service, LruPool<LoadedModel>>();

function poolOf(svc: Service): LruPool<LoadedModel> {
  let pool = pools.get(svc);
  if (!pool) {
    pool = new LruPool<LoadedModel>(GENERATION_LIMITS.loadedModels, (m) => m.generator.release(), (e) => svc.log(`generation: releasing a model failed: ${(e as Error).message}`));
    pools.set(svc, pool);
  }
  return pool;
}

export function generators(svc: Service): Generators {
  const pool = poolOf(svc);
  return {
    acquire: (target) => pool.acquire(target.key, () => loadTarget(target, svc.log)),
    loaded: () => pool.keys(),
  };
}

/** Releases every loaded generator (those in use when their requests finish). */
export async function releaseGenerators(svc: Service): Promise<void> {
  await pools.get(svc)?.clear();
}
