import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateMemory } from '../../src/memory/model.js';
import { applyReplicated } from '../../src/store/replica.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { wireMemory } from '../helpers/peer.js';

/*
 * An apply sends its rows as several upsert statements in flight at once on its
 * transaction's connection. All of them commit together, or none does, and a failure is
 * reported as the statement that failed (not as the aborted transaction after it).
 */
let t: TestDatabase;
const ROWS = 1100; // many statements' worth

beforeAll(async () => {
  t = await createTestDatabase();
  // Refuses a row by its title: a failure in whichever statement carries it.
  await t.database.sql.unsafe(`
    CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.title = 'refuse me' THEN RAISE EXCEPTION 'row refused by the test trigger'; END IF; RETURN NEW; END $$;
    CREATE TRIGGER refuse_marked BEFORE INSERT ON memories FOR EACH ROW EXECUTE FUNCTION refuse_marked()`);
});
afterAll(async () => t?.drop());

const rows = (prefix: string, refuseAt?: number) =>
  Array.from({ length: ROWS }, (_, i) => validateMemory(wireMemory({ id: `${prefix}-${String(i).padStart(5, '0')}`, title: i === refuseAt ? 'refuse me' : `row ${i}` })));
const count = async (prefix: string) => {
  const [m] = await t.database.sql`SELECT count(*)::int AS n FROM memories WHERE id LIKE ${`${prefix}-%`}`;
  const [f] = await t.database.sql`SELECT count(*)::int AS n FROM change_feed WHERE memory_id LIKE ${`${prefix}-%`}`;
  return { memories: m!.n as number, feed: f!.n as number };
};

describe('an apply of many statements', () => {
  it('applies every row with one feed row each, and reports the last feed position', async () => {
    const out = await applyReplicated(t.database.db, { memories: rows('all'), tombstones: [], originPeer: 'peer-a' });
    expect(out.applied).toHaveLength(ROWS);
    expect(await count('all')).toEqual({ memories: ROWS, feed: ROWS });
    const [last] = await t.database.sql`SELECT txid::text AS txid, seq::text AS seq FROM change_feed f WHERE memory_id LIKE 'all-%' ORDER BY f.txid DESC, f.seq DESC LIMIT 1`;
    expect(out.position).toEqual({ txid: last!.txid, seq: last!.seq });
    const origins = await t.database.sql`SELECT DISTINCT origin_peer FROM change_feed WHERE memory_id LIKE 'all-%'`;
    expect(origins.map((r) => r.origin_peer)).toEqual(['peer-a']);
  });

  for (const [where, at] of [['the first statement', 3], ['a middle statement', 600], ['the last statement', ROWS - 1]] as const) {
    it(`commits nothing when ${where} fails, and throws that statement's error`, async () => {
      const prefix = `refused${at}`;
      await expect(applyReplicated(t.database.db, { memories: rows(prefix, at), tombstones: [], originPeer: 'peer-a' })).rejects.toThrow(/row refused by the test trigger/);
      expect(await count(prefix)).toEqual({ memories: 0, feed: 0 });
    });
  }

  it('serves the next apply on the same pool after a failed one', async () => {
    await expect(applyReplicated(t.database.db, { memories: rows('before', 0), tombstones: [], originPeer: null })).rejects.toThrow();
    const out = await applyReplicated(t.database.db, { memories: rows('after'), tombstones: [], originPeer: null });
    expect(out.applied).toHaveLength(ROWS);
  });
});
