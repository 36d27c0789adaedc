/** Postgres through the `postgres` package (runs on Bun, Deno and Node): several servers share one queue. */
import postgres from 'postgres';
import { numberedPlaceholders, type Sql } from './sql.ts';

type Client = postgres.Sql | postgres.TransactionSql;

function wrap(client: Client, close: () => Promise<void>): Sql {
  const sql: Sql = {
    dialect: 'postgres',
    async all<T>(query: string, params: readonly unknown[] = []) {
      const rows = await client.unsafe(numberedPlaceholders(query), params as postgres.ParameterOrJSON<never>[]);
      return [...rows] as T[];
    },
    async tx<T>(fn: (s: Sql) => Promise<T>): Promise<T> {
      if ('savepoint' in client) return fn(sql); // already inside one
      return (await (client as postgres.Sql).begin((t) => fn(wrap(t, close)))) as T;
    },
    close,
  };
  return sql;
}

/** Connects to `url` (postgres://user:pass@host:port/db); `max` connections in the pool. */
export function openPostgres(url: string, max = 10): Sql {
  const client = postgres(url, { max, onnotice: () => {} });
  return wrap(client, () => client.end({ timeout: 5 }));
}
