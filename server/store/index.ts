/** Opens the store a server config names: a SQLite file (default, under the home folder) or a Postgres URL. */
import { openPostgres } from './postgres.ts';
import { sqlStore } from './sql-store.ts';
import { openSqlite } from './sqlite.ts';
import type { Store } from './types.ts';

export async function openStore(location: string): Promise<Store> {
  if (/^postgres(ql)?:\/\//.test(location)) return sqlStore(openPostgres(location), { exclusive: false });
  return sqlStore(await openSqlite(location), { exclusive: true });
}

export type { Store } from './types.ts';
