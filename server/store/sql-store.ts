/**
 * The store over SQL, written once for SQLite and Postgres. Rows are ordered by a per-table sequence (`seq`) so that
 * lists are newest first and the `after` cursor is exact even within one second; JSON values are stored as text.
 * The queue is the `jobs` table: `claimJob` takes the oldest queued row in one statement (Postgres adds
 * `FOR UPDATE SKIP LOCKED`, so servers sharing the database never take the same job, and never wait on each other).
 */
import type { Sql } from './sql.ts';
import type { CheckpointRecord, EventRecord, FileRecord, JobError, JobPatch, JobRecord, JobStatus, Page, Store } from './types.ts';

type Row = Record<string, unknown>;

const serial = (sql: Sql) => (sql.dialect === 'postgres' ? 'seq BIGSERIAL PRIMARY KEY' : 'seq INTEGER PRIMARY KEY AUTOINCREMENT');

function schema(sql: Sql): string[] {
  const s = serial(sql);
  return [
    `CREATE TABLE IF NOT EXISTS files (${s}, id TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL, bytes BIGINT NOT NULL, filename TEXT NOT NULL, purpose TEXT NOT NULL, status TEXT NOT NULL, status_details TEXT)`,
    `CREATE TABLE IF NOT EXISTS jobs (${s}, id TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL, status TEXT NOT NULL, model TEXT NOT NULL, spec TEXT NOT NULL, config TEXT NOT NULL, metadata TEXT, fine_tuned_model TEXT, finished_at BIGINT, error TEXT, trained_tokens BIGINT, estimated_finish BIGINT, result_files TEXT NOT NULL, attempts INTEGER NOT NULL, worker_id TEXT, lease_until BIGINT, control TEXT)`,
    'CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq)',
    'CREATE INDEX IF NOT EXISTS jobs_by_model ON jobs (fine_tuned_model)',
    'CREATE TABLE IF NOT EXISTS job_metadata (job_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (job_id, key))',
    `CREATE TABLE IF NOT EXISTS events (${s}, id TEXT NOT NULL UNIQUE, job_id TEXT NOT NULL, created_at BIGINT NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL, type TEXT NOT NULL, data TEXT)`,
    'CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, seq)',
    `CREATE TABLE IF NOT EXISTS checkpoints (${s}, id TEXT NOT NULL UNIQUE, job_id TEXT NOT NULL, created_at BIGINT NOT NULL, step_number INTEGER NOT NULL, metrics TEXT NOT NULL, fine_tuned_model_checkpoint TEXT NOT NULL, dir TEXT NOT NULL)`,
    'CREATE INDEX IF NOT EXISTS checkpoints_by_job ON checkpoints (job_id, seq)',
  ];
}

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const json = <T>(v: unknown): T => JSON.parse(String(v)) as T;
const jsonOrNull = <T>(v: unknown): T | null => (v === null || v === undefined ? null : json<T>(v));

function fileOf(r: Row): FileRecord {
  return {
    id: String(r.id), created_at: num(r.created_at), bytes: num(r.bytes), filename: String(r.filename), purpose: String(r.purpose),
    status: r.status as FileRecord['status'], status_details: (r.status_details as string | null) ?? null,
  };
}

function jobOf(r: Row): JobRecord {
  return {
    id: String(r.id), created_at: num(r.created_at), status: r.status as JobStatus, model: String(r.model),
    spec: json(r.spec), config: json(r.config), metadata: jsonOrNull(r.metadata),
    fine_tuned_model: (r.fine_tuned_model as string | null) ?? null, finished_at: numOrNull(r.finished_at), error: jsonOrNull<JobError>(r.error),
    trained_tokens: numOrNull(r.trained_tokens), estimated_finish: numOrNull(r.estimated_finish), result_files: json(r.result_files),
    attempts: num(r.attempts), worker_id: (r.worker_id as string | null) ?? null, lease_until: numOrNull(r.lease_until),
    control: (r.control as JobRecord['control']) ?? null,
  };
}

function eventOf(r: Row): EventRecord {
  return {
    id: String(r.id), job_id: String(r.job_id), created_at: num(r.created_at), level: r.level as EventRecord['level'], message: String(r.message),
    type: r.type as EventRecord['type'], data: jsonOrNull(r.data), seq: num(r.seq),
  };
}

function checkpointOf(r: Row): CheckpointRecord {
  return {
    id: String(r.id), job_id: String(r.job_id), created_at: num(r.created_at), step_number: num(r.step_number), metrics: json(r.metrics),
    fine_tuned_model_checkpoint: String(r.fine_tuned_model_checkpoint), dir: String(r.dir),
  };
}

/** How each patchable job column is written. */
const JOB_COLUMNS: Record<keyof JobPatch, (v: unknown) => unknown> = {
  status: (v) => v, fine_tuned_model: (v) => v, finished_at: (v) => v, error: (v) => (v === null ? null : JSON.stringify(v)),
  trained_tokens: (v) => v, estimated_finish: (v) => v, result_files: (v) => JSON.stringify(v), worker_id: (v) => v,
  lease_until: (v) => v, control: (v) => v, config: (v) => JSON.stringify(v),
};

export async function sqlStore(sql: Sql, opts: { exclusive: boolean }): Promise<Store> {
  await sql.tx(async (t) => {
    // Servers starting together against one Postgres must not race on CREATE TABLE.
    if (t.dialect === 'postgres') await t.all('SELECT pg_advisory_xact_lock(727274)');
    for (const statement of schema(t)) await t.all(statement);
  });
  const pg = sql.dialect === 'postgres';

  /** Newest-first page of `table` rows matching `where` (params in order), after the row with id `after`. */
  async function page(table: string, where: string[], params: unknown[], p: Page, order: 'asc' | 'desc' = 'desc'): Promise<{ rows: Row[]; has_more: boolean }> {
    const conds = [...where];
    const args = [...params];
    if (p.after !== undefined) {
      conds.push(`seq ${order === 'desc' ? '<' : '>'} (SELECT seq FROM ${table} WHERE id = ?)`);
      args.push(p.after);
    }
    const rows = await sql.all(`SELECT * FROM ${table}${conds.length ? ` WHERE ${conds.join(' AND ')}` : ''} ORDER BY seq ${order.toUpperCase()} LIMIT ?`, [...args, p.limit + 1]);
    return { rows: rows.slice(0, p.limit), has_more: rows.length > p.limit };
  }

  return {
    kind: sql.dialect,
    exclusive: opts.exclusive,

    async createFile(f) {
      await sql.all('INSERT INTO files (id, created_at, bytes, filename, purpose, status, status_details) VALUES (?, ?, ?, ?, ?, ?, ?)', [f.id, f.created_at, f.bytes, f.filename, f.purpose, f.status, f.status_details]);
    },
    async getFile(id) {
      const [r] = await sql.all('SELECT * FROM files WHERE id = ?', [id]);
      return r ? fileOf(r) : undefined;
    },
    async listFiles(p) {
      const { rows, has_more } = await page('files', p.purpose ? ['purpose = ?'] : [], p.purpose ? [p.purpose] : [], p, p.order);
      return { data: rows.map(fileOf), has_more };
    },
    async updateFile(id, patch) {
      const keys = Object.keys(patch) as (keyof typeof patch)[];
      if (keys.length === 0) {
        const [row] = await sql.all('SELECT * FROM files WHERE id = ?', [id]);
        return row ? fileOf(row) : undefined;
      }
      const [r] = await sql.all(`UPDATE files SET ${keys.map((k) => `${k} = ?`).join(', ')} WHERE id = ? RETURNING *`, [...keys.map((k) => patch[k]), id]);
      return r ? fileOf(r) : undefined;
    },
    async deleteFile(id) {
      return (await sql.all('DELETE FROM files WHERE id = ? RETURNING id', [id])).length > 0;
    },

    async createJob(j) {
      await sql.tx(async (t) => {
        await t.all(
          'INSERT INTO jobs (id, created_at, status, model, spec, config, metadata, fine_tuned_model, finished_at, error, trained_tokens, estimated_finish, result_files, attempts, worker_id, lease_until, control) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
          [j.id, j.created_at, j.status, j.model, JSON.stringify(j.spec), JSON.stringify(j.config), j.metadata ? JSON.stringify(j.metadata) : null, j.fine_tuned_model, j.finished_at,
            j.error ? JSON.stringify(j.error) : null, j.trained_tokens, j.estimated_finish, JSON.stringify(j.result_files), j.attempts, j.worker_id, j.lease_until, j.control],
        );
        for (const [key, value] of Object.entries(j.metadata ?? {})) await t.all('INSERT INTO job_metadata (job_id, key, value) VALUES (?, ?, ?)', [j.id, key, value]);
      });
    },
    async getJob(id) {
      const [r] = await sql.all('SELECT * FROM jobs WHERE id = ?', [id]);
      return r ? jobOf(r) : undefined;
    },
    async listJobs(p) {
      const where: string[] = [], params: unknown[] = [];
      for (const [key, value] of Object.entries(p.metadata ?? {})) {
        where.push('EXISTS (SELECT 1 FROM job_metadata m WHERE m.job_id = jobs.id AND m.key = ? AND m.value = ?)');
        params.push(key, value);
      }
      const { rows, has_more } = await page('jobs', where, params, p);
      return { data: rows.map(jobOf), has_more };
    },
    async updateJob(id, patch, from) {
      const keys = (Object.keys(patch) as (keyof JobPatch)[]).filter((k) => patch[k] !== undefined);
      const sets = keys.map((k) => `${k} = ?`);
      const params: unknown[] = keys.map((k) => JOB_COLUMNS[k](patch[k]));
      let where = 'id = ?';
      params.push(id);
      if (from?.length) {
        where += ` AND status IN (${from.map(() => '?').join(', ')})`;
        params.push(...from);
      }
      if (sets.length === 0) sets.push('id = id');
      const [r] = await sql.all(`UPDATE jobs SET ${sets.join(', ')} WHERE ${where} RETURNING *`, params);
      return r ? jobOf(r) : undefined;
    },
    async claimJob(workerId, leaseUntil) {
      const pick = `SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1${pg ? ' FOR UPDATE SKIP LOCKED' : ''}`;
      const [r] = await sql.all(`UPDATE jobs SET status = 'running', worker_id = ?, lease_until = ?, attempts = attempts + 1, control = NULL WHERE seq = (${pick}) RETURNING *`, [workerId, leaseUntil]);
      return r ? jobOf(r) : undefined;
    },
    async renewLeases(workerId, leaseUntil) {
      await sql.all("UPDATE jobs SET lease_until = ? WHERE worker_id = ? AND status = 'running'", [leaseUntil, workerId]);
    },
    async recoverJobs(now, maxAttempts, error, all = false) {
      return sql.tx(async (t) => {
        const rows = await t.all(`SELECT * FROM jobs WHERE status = 'running'${all ? '' : ' AND lease_until < ?'}${pg ? ' FOR UPDATE SKIP LOCKED' : ''}`, all ? [] : [now]);
        const changed: JobRecord[] = [];
        for (const job of rows.map(jobOf)) {
          const failed = job.attempts >= maxAttempts;
          const [r] = failed
            ? await t.all("UPDATE jobs SET status = 'failed', worker_id = NULL, lease_until = NULL, finished_at = ?, error = ? WHERE id = ? RETURNING *", [Math.floor(now / 1000), JSON.stringify(error(job)), job.id])
            : await t.all("UPDATE jobs SET status = 'queued', worker_id = NULL, lease_until = NULL WHERE id = ? RETURNING *", [job.id]);
          if (r) changed.push(jobOf(r));
        }
        return changed;
      });
    },

    async fineTunedModels() {
      const rows = await sql.all("SELECT id, fine_tuned_model, finished_at, created_at, model FROM jobs WHERE status = 'succeeded' AND fine_tuned_model IS NOT NULL ORDER BY seq DESC");
      return rows.map((r) => ({ id: String(r.fine_tuned_model), created_at: num(r.finished_at ?? r.created_at), job_id: String(r.id), base: String(r.model) }));
    },
    async jobByModel(fineTunedModel) {
      const [r] = await sql.all('SELECT * FROM jobs WHERE fine_tuned_model = ?', [fineTunedModel]);
      return r ? jobOf(r) : undefined;
    },

    async addEvent(e) {
      const [r] = await sql.all('INSERT INTO events (id, job_id, created_at, level, message, type, data) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *', [e.id, e.job_id, e.created_at, e.level, e.message, e.type, e.data ? JSON.stringify(e.data) : null]);
      return eventOf(r!);
    },
    async listEvents(jobId, p) {
      const { rows, has_more } = await page('events', ['job_id = ?'], [jobId], p);
      return { data: rows.map(eventOf), has_more };
    },
    async eventsSince(jobId, afterId) {
      const rows = afterId === undefined
        ? await sql.all('SELECT * FROM events WHERE job_id = ? ORDER BY seq', [jobId])
        : await sql.all('SELECT * FROM events WHERE job_id = ? AND seq > (SELECT seq FROM events WHERE id = ?) ORDER BY seq', [jobId, afterId]);
      return rows.map(eventOf);
    },

    async addCheckpoint(c) {
      await sql.all('INSERT INTO checkpoints (id, job_id, created_at, step_number, metrics, fine_tuned_model_checkpoint, dir) VALUES (?, ?, ?, ?, ?, ?, ?)', [c.id, c.job_id, c.created_at, c.step_number, JSON.stringify(c.metrics), c.fine_tuned_model_checkpoint, c.dir]);
    },
    async listCheckpoints(jobId, p) {
      const { rows, has_more } = await page('checkpoints', ['job_id = ?'], [jobId], p);
      return { data: rows.map(checkpointOf), has_more };
    },

    close: () => sql.close(),
  };
}
