/**
 * SQLite through the runtime's own binding: `bun:sqlite` under Bun, `node:sqlite` under Deno (and Node 22+). One
 * file, WAL journal, a busy timeout: the embedded store that needs no set-up.
 */
import type { Sql } from './sql.ts';

interface Statement {
  all(...params: unknown[]): unknown[];
}
interface Database {
  prepare(query: string): Statement;
  exec(query: string): void;
  close(): void;
}

async function openDatabase(path: string): Promise<Database> {
  if (typeof Bun !== 'undefined') {
    const { Database } = await import('bun:sqlite');
    const db = new Database(path, { create: true, strict: true });
    return { prepare: (q) => db.prepare(q) as unknown as Statement, exec: (q) => void db.exec(q), close: () => db.close() };
  }
  const { DatabaseSync } = (await import('node:sqlite')) as unknown as { DatabaseSync: new (path: string) => Database };
  return new DatabaseSync(path);
}

// SQLite binds booleans as integers only through some bindings; numbers, strings and null are portable.
const bindable = (v: unknown): unknown => (typeof v === 'boolean' ? (v ? 1 : 0) : v === undefined ? null : v);

export async function openSqlite(path: string): Promise<Sql> {
  const db = await openDatabase(path);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;');
  let depth = 0;
  // Statements are synchronous: a transaction's callback runs to completion before another query can interleave,
  // except across its awaits, which are guarded by the queue below.
  let queue: Promise<unknown> = Promise.resolve();
  const sql: Sql = {
    dialect: 'sqlite',
    async all<T>(query: string, params: readonly unknown[] = []) {
      return db.prepare(query).all(...params.map(bindable)) as T[];
    },
    async tx<T>(fn: (s: Sql) => Promise<T>): Promise<T> {
      if (depth > 0) return fn(sql);
      const run = async () => {
        depth++;
        db.exec('BEGIN IMMEDIATE');
        try {
          const out = await fn(sql);
          db.exec('COMMIT');
          return out;
        } catch (e) {
          db.exec('ROLLBACK');
          throw e;
        } finally {
          depth--;
        }
      };
      const result = queue.then(run, run);
      queue = result.catch(() => undefined);
      return result;
    },
    async close() {
      db.close();
    },
  };
  return sql;
}
