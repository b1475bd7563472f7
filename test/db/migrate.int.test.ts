import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDatabase, prepareDatabase } from '../../src/db/migrate.js';
import { PG_ADMIN_URL, dbUrl, uniqueSuffix } from '../helpers/env.js';
import { inject } from 'vitest';

const name = `memfed_t_${inject('testRun')}_mig_${uniqueSuffix()}`;

/** Runs `check` on a connection to the migrated database. */
async function onMigrated(check: (sql: postgres.Sql) => Promise<void>): Promise<void> {
  const url = dbUrl(name);
  await prepareDatabase(url);
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await check(sql);
  } finally {
    await sql.end();
  }
}

afterAll(async () => {
  const a = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
  await a.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await a.end();
});

describe('database bootstrap', () => {
  it('creates the missing database and migrates it once when several processes start at once', async () => {
    const url = dbUrl(name);
    await Promise.all(Array.from({ length: 6 }, () => prepareDatabase(url)));
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    const tables = await sql`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`;
    expect(tables.map((t) => t.tablename)).toEqual(expect.arrayContaining(['change_feed', 'memories', 'peer_cursors', 'federation_push_dlq']));
    const applied = await sql`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`;
    const journal = (await import('../../src/db/migrations/meta/_journal.json', { with: { type: 'json' } })).default as { entries: unknown[] };
    expect(applied[0]!.n).toBe(journal.entries.length);
    await sql.end();
    expect(await ensureDatabase(url)).toBe(false);
  });

  it('keeps no pending list on the tags index, so no write ever merges one into it', () =>
    onMigrated(async (sql) => {
      const [idx] = await sql`SELECT reloptions FROM pg_class WHERE relname = 'memories_tags_idx'`;
      expect(idx!.reloptions).toContain('fastupdate=false');
    }));

  it('leaves half of each DLQ page free, so leasing a row for replay updates it in place (HOT)', () =>
    onMigrated(async (sql) => {
      const [t] = await sql`SELECT reloptions FROM pg_class WHERE relname = 'federation_push_dlq'`;
      expect(t!.reloptions).toContain('fillfactor=50');
      // In one transaction, whose own counters pg_stat_xact_user_tables reports.
      const s = await sql.begin(async (tx) => {
        await tx`INSERT INTO federation_push_dlq (peer_id, memory_id, op, payload, failure_class, last_error)
          SELECT 'p', 'm' || g, 'upsert', jsonb_build_object('content', repeat('x', 400)), 'transient', 'down' FROM generate_series(1, 200) g`;
        await tx`UPDATE federation_push_dlq SET lease_owner = 'o', lease_until = now() + interval '1 minute'`;
        return (await tx`SELECT n_tup_upd::int AS upd, n_tup_hot_upd::int AS hot FROM pg_stat_xact_user_tables WHERE relname = 'federation_push_dlq'`)[0];
      });
      expect(s).toEqual({ upd: 200, hot: 200 });
    }));
});
