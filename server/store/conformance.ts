/**
 * The cases every store must pass, run against SQLite (sqlite.test.ts) and Postgres (postgres.test.ts): lists newest
 * first with an exclusive `after` cursor, compare-and-set job updates, a queue that hands each job to exactly one
 * claimer however many claim at once (several store instances, as several servers, for Postgres), lease recovery
 * with a bounded number of attempts, event replay.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { JobRecord, Store } from './types.ts';

let counter = 0;
const uid = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}`;

export function job(overrides: Partial<JobRecord> = {}): JobRecord {
  return {
    id: uid('ftjob'), created_at: 1_700_000_000, status: 'queued', model: 'stories260k', spec: { training_file: 'file-x' }, config: { train: { steps: 1 } },
    metadata: null, fine_tuned_model: null, finished_at: null, error: null, trained_tokens: null, estimated_finish: null, result_files: [],
    attempts: 0, worker_id: null, lease_until: null, control: null, ...overrides,
  };
}

/**
 * Registers the suite. `open` returns a store on a fresh, empty database; `openAnother` (optional) a second store
 * on the same database, as a second server would open it.
 */
export function storeConformance(name: string, open: () => Promise<Store>, openAnother?: () => Promise<Store>): void {
  describe(`store conformance: ${name}`, () => {
    let store: Store;
    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      await store?.close();
    });

    test('files: create, get, update, delete; lists newest first with an exclusive after cursor', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const id = uid('file');
        ids.push(id);
        await store.createFile({ id, created_at: 1_700_000_000, bytes: i, filename: `../etc/passwd-${i}`, purpose: i % 2 ? 'fine-tune' : 'batch', status: 'uploaded', status_details: null });
      }
      expect((await store.getFile(ids[0]!))?.filename).toBe('../etc/passwd-0'); // kept as data, never a path
      const first = await store.listFiles({ limit: 2 });
      expect(first.data.map((f) => f.id)).toEqual([ids[4]!, ids[3]!]);
      expect(first.has_more).toBe(true);
      const next = await store.listFiles({ limit: 2, after: ids[3] });
      expect(next.data.map((f) => f.id)).toEqual([ids[2]!, ids[1]!]);
      const last = await store.listFiles({ limit: 2, after: ids[1] });
      expect(last.data.map((f) => f.id)).toEqual([ids[0]!]);
      expect(last.has_more).toBe(false);
      expect((await store.listFiles({ limit: 10, purpose: 'fine-tune' })).data.map((f) => f.id)).toEqual([ids[3]!, ids[1]!]);
      expect((await store.listFiles({ limit: 2, order: 'asc' })).data.map((f) => f.id)).toEqual([ids[0]!, ids[1]!]);
      expect((await store.updateFile(ids[0]!, { status: 'error', status_details: 'line 3: no messages' }))?.status_details).toBe('line 3: no messages');
      expect(await store.deleteFile(ids[0]!)).toBe(true);
      expect(await store.deleteFile(ids[0]!)).toBe(false);
      expect(await store.getFile(ids[0]!)).toBeUndefined();
    });

    test('jobs: round trip of every field, metadata filters, paging', async () => {
      const a = job({ metadata: { team: 'nlp', run: '1' }, spec: { hyperparameters: { n_epochs: 'auto' } }, error: { code: 'x', message: 'y', param: null } });
      const b = job({ metadata: { team: 'vision' } });
      const c = job({ metadata: { team: 'nlp', run: '2' } });
      for (const j of [a, b, c]) await store.createJob(j);
      expect(await store.getJob(a.id)).toEqual(a);
      const nlp = await store.listJobs({ limit: 10, metadata: { team: 'nlp' } });
      expect(nlp.data.map((j) => j.id).filter((id) => [a.id, b.id, c.id].includes(id))).toEqual([c.id, a.id]);
      expect((await store.listJobs({ limit: 10, metadata: { team: 'nlp', run: '1' } })).data.map((j) => j.id)).toEqual([a.id]);
      const firstPage = await store.listJobs({ limit: 1 });
      expect(firstPage.has_more).toBe(true);
      expect((await store.listJobs({ limit: 1, after: firstPage.data[0]!.id })).data[0]!.id).not.toBe(firstPage.data[0]!.id);
    });

    test('jobs: updates are compare-and-set on the status', async () => {
      const j = job({ status: 'succeeded' });
      await store.createJob(j);
      expect(await store.updateJob(j.id, { status: 'cancelled' }, ['queued', 'running'])).toBeUndefined();
      expect((await store.getJob(j.id))!.status).toBe('succeeded');
      const q = job();
      await store.createJob(q);
      const results = await Promise.all([store.updateJob(q.id, { status: 'cancelled' }, ['queued']), store.updateJob(q.id, { status: 'cancelled' }, ['queued'])]);
      expect(results.filter(Boolean).length).toBe(1);
      expect((await store.updateJob(q.id, { result_files: ['file-a'], trained_tokens: 12 }))!.result_files).toEqual(['file-a']);
      expect(await store.updateJob('ftjob-missing', { status: 'failed' })).toBeUndefined();
    });

    test('queue: 50 jobs, 10 claimers at once: each job claimed exactly once, oldest first', async () => {
      // Drain whatever earlier cases left queued.
      while (await store.claimJob('drain', Date.now() + 60_000));
      const jobs = Array.from({ length: 50 }, () => job());
      for (const j of jobs) await store.createJob(j);
      const others = openAnother ? await Promise.all(Array.from({ length: 2 }, () => openAnother())) : [];
      const stores = [store, ...others];
      const claimed: string[][] = await Promise.all(Array.from({ length: 10 }, async (_, w) => {
        const mine: string[] = [];
        for (;;) {
          const got = await stores[w % stores.length]!.claimJob(`worker-${w}`, Date.now() + 60_000);
          if (!got) return mine;
          expect(got.status).toBe('running');
          expect(got.attempts).toBe(1);
          mine.push(got.id);
        }
      }));
      const all = claimed.flat();
      expect(all.length).toBe(50);
      expect(new Set(all).size).toBe(50);
      expect(new Set(all)).toEqual(new Set(jobs.map((j) => j.id)));
      expect(claimed.filter((c) => c.length > 0).length).toBeGreaterThan(1); // they really ran concurrently
      for (const s of others) await s.close();
    });

    test('leases: renewed leases hold, lapsed ones requeue, the last attempt fails with the error', async () => {
      while (await store.claimJob('drain', Date.now() + 60_000));
      const now = Date.now();
      const held = job(), lapsed = job(), exhausted = job({ attempts: 2 });
      for (const j of [held, lapsed, exhausted]) await store.createJob(j);
      for (const j of [held, lapsed, exhausted]) await store.updateJob(j.id, { status: 'running', worker_id: j === held ? 'alive' : 'dead', lease_until: now - 1000 });
      await store.renewLeases('alive', now + 60_000);
      const changed = await store.recoverJobs(now, 2, (j) => ({ code: 'worker_died', message: `worker of ${j.id} died ${j.attempts} times`, param: null }));
      const byId = new Map(changed.map((j) => [j.id, j]));
      expect(byId.has(held.id)).toBe(false);
      expect(byId.get(lapsed.id)!.status).toBe('queued');
      expect(byId.get(lapsed.id)!.worker_id).toBeNull();
      expect(byId.get(exhausted.id)!.status).toBe('failed');
      expect(byId.get(exhausted.id)!.error!.message).toContain('died 2 times');
      const next = await store.claimJob('w', now + 60_000);
      expect(next!.id).toBe(lapsed.id);
      expect(next!.attempts).toBe(1);
      // `all`: at start-up of an exclusive store, whatever is running was the previous process's.
      expect((await store.recoverJobs(now, 5, () => ({ code: 'x', message: 'x', param: null }), true)).map((j) => j.id)).toContain(held.id);
    });

    test('fine-tuned models: succeeded jobs only, found by name', async () => {
      const ok = job({ status: 'succeeded', fine_tuned_model: `ft:stories260k:demo:${uid('x')}`, finished_at: 1_700_000_100 });
      const failed = job({ status: 'failed', fine_tuned_model: null });
      for (const j of [ok, failed]) await store.createJob(j);
      const models = await store.fineTunedModels();
      expect(models.find((m) => m.job_id === ok.id)).toEqual({ id: ok.fine_tuned_model!, created_at: 1_700_000_100, job_id: ok.id, base: 'stories260k' });
      expect(models.some((m) => m.job_id === failed.id)).toBe(false);
      expect((await store.jobByModel(ok.fine_tuned_model!))?.id).toBe(ok.id);
      expect(await store.jobByModel('ft:none')).toBeUndefined();
    });

    test('events: newest-first pages, and replay after an id in order', async () => {
      const j = job();
      await store.createJob(j);
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const e = await store.addEvent({ id: uid('ftevent'), job_id: j.id, created_at: 1, level: 'info', message: `step ${i}`, type: i % 2 ? 'metrics' : 'message', data: i % 2 ? { step: i, loss: 1 / (i + 1) } : null });
        ids.push(e.id);
        expect(e.seq).toBeGreaterThan(0);
      }
      const page = await store.listEvents(j.id, { limit: 4 });
      expect(page.data.map((e) => e.id)).toEqual([ids[5]!, ids[4]!, ids[3]!, ids[2]!]);
      expect(page.has_more).toBe(true);
      expect(page.data[0]!.data).toEqual({ step: 5, loss: 1 / 6 });
      expect((await store.eventsSince(j.id, ids[3])).map((e) => e.id)).toEqual([ids[4]!, ids[5]!]);
      expect((await store.eventsSince(j.id)).length).toBe(6);
    });

    test('checkpoints: newest first', async () => {
      const j = job();
      await store.createJob(j);
      for (const step of [10, 20, 30]) await store.addCheckpoint({ id: uid('ftckpt'), job_id: j.id, created_at: 1, step_number: step, metrics: { step, train_loss: 1 }, fine_tuned_model_checkpoint: `ft:m:${step}`, dir: `/x/${step}` });
      expect((await store.listCheckpoints(j.id, { limit: 10 })).data.map((c) => c.step_number)).toEqual([30, 20, 10]);
    });
  });
}
