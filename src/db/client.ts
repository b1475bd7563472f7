import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import type { PostgresJsSession } from 'drizzle-orm/postgres-js/session';
import postgres from 'postgres';
import * as schema from './schema.js';

export type Sql = postgres.Sql;
/** The drizzle handle; `$client` is its postgres.js pool (for prepared hot-path statements). */
export type Db = PostgresJsDatabase<typeof schema> & { $client: Sql };
/** A transaction handle (what `db.transaction` passes its callback). */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/**
 * The postgres.js handle under a drizzle handle: the pool under `db`, a transaction's own
 * connection under `tx`. Hot-path statements go through it as prepared statements
 * (drizzle's `execute` parses and plans its text every time).
 */
export function clientOf(db: Db | Tx): Sql {
  const client = (db._.session as unknown as Partial<PostgresJsSession<Sql, typeof schema, never>>).client;
  // drizzle keeps it on its session; fail clearly should a drizzle upgrade move it.
  if (typeof client?.unsafe !== 'function') throw new Error('clientOf: the drizzle handle has no postgres.js client on its session');
  return client;
}

export interface Database {
  sql: Sql;
  db: Db;
  close(): Promise<void>;
}

/** One pool per process; sessions run in UTC so timestamps render predictably. */
export function createDatabase(url: string, opts: { max?: number; onnotice?: (n: unknown) => void } = {}): Database {
  const sql = postgres(url, {
    max: opts.max ?? 10,
    connection: { TimeZone: 'UTC', application_name: 'memfed' },
    onnotice: opts.onnotice ?? (() => {}),
    idle_timeout: 30,
    connect_timeout: 10,
  });
  const db = drizzle(sql, { schema });
  return { sql, db, close: () => sql.end({ timeout: 5 }) };
}
