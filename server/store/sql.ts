/**
 * The little SQL the store needs, over either database: `?` placeholders (rewritten to `$n` for Postgres), rows as
 * plain objects, and transactions. The store's queries are written once in the common subset of both dialects.
 */
export interface Sql {
  readonly dialect: 'sqlite' | 'postgres';
  all<T = Record<string, unknown>>(query: string, params?: readonly unknown[]): Promise<T[]>;
  /** Runs `fn` in one transaction (serialised writes in SQLite; Postgres's default isolation). */
  tx<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** `?` → `$1`, `$2`, … (the store's queries have no `?` inside string literals). */
export function numberedPlaceholders(query: string): string {
  let n = 0;
  return query.replace(/\?/g, () => `$${++n}`);
}
