import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateMemory } from '../../src/memory/model.js';
import { applyReplicated } from '../../src/store/replica.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { PG_ADMIN_URL, waitFor } from '../helpers/env.js';
import { wireMemory } from '../helpers/peer.js';

/*
 * Two applies whose rows cross lanes (a memory in one is a tombstone in the other) take
 * their row locks in opposite orders and can deadlock; Postgres aborts one, which must be
 * run again rather than fail the push or pull that carried it.
 */
let t: TestDatabase;
let admin: postgres.Sql;

beforeAll(async () => {
  t = await createTestDatabase();
  admin = postgres(PG_ADMIN_URL, { max: 2, onnotice: () => {} });
  // Deadlocks found in milliseconds, not the default second (new sessions of this database only).
  await admin.unsafe(`ALTER DATABASE "${t.name}" SET deadlock_timeout = '20ms'`);
});
afterAll(async () => {
  await admin?.end();
  await t?.drop();
});

const at = (s: number) => `2026-01-01T00:00:0${s}.000000+00:00`;
const memory = (id: string, s: number, title: string) => validateMemory(wireMemory({ id, title, created_at: at(1), updated_at: at(s) }));

describe('applyReplicated under crossing row locks', () => {
  it('runs a deadlocked apply again: both applies land, and the result is last-writer-wins', async () => {
    const deadlocks = async () => Number((await admin`SELECT deadlocks FROM pg_stat_database WHERE datname = ${t.name}`)[0]!.deadlocks);
    const db = t.database.db;
    const before = await deadlocks();
    for (let round = 0; round < 8; round++) {
      const [x, y] = [`cross-x-${round}`, `cross-y-${round}`];
      await applyReplicated(db, { memories: [memory(x, 1, 'x0'), memory(y, 1, 'y0')], tombstones: [], originPeer: null });
      // A third session holds both rows, so the two applies start together when it lets go.
      const dbUrl = t.url;
      const holder = postgres(dbUrl, { max: 1, onnotice: () => {} });
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      const holding = holder.begin(async (tx) => {
        await tx`SELECT id FROM memories WHERE id IN (${x}, ${y}) FOR UPDATE`;
        locked();
        await held;
      });
      await isLocked;
      const a = applyReplicated(db, { memories: [memory(x, 2, 'x from a')], tombstones: [{ id: y, deleted_at: at(2) }], originPeer: 'peer-a' });
      const b = applyReplicated(db, { memories: [memory(y, 3, 'y from b')], tombstones: [{ id: x, deleted_at: at(3) }], originPeer: 'peer-b' });
      await waitFor(async () => Number((await admin`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${t.name} AND wait_event_type = 'Lock'`)[0]!.n) >= 2 || null, { what: 'both applies waiting on the held rows' });
      release();
      await holding;
      await holder.end();
      await Promise.all([a, b]);
      const rows = await t.database.sql<{ id: string; title: string; deleted: boolean }[]>`SELECT id, title, deleted_at IS NOT NULL AS deleted FROM memories WHERE id IN (${x}, ${y}) ORDER BY id`;
      // x: b's tombstone (time 3) beats a's update (time 2); y: b's update (3) beats a's tombstone (2).
      expect(rows.map((r) => ({ id: r.id, deleted: r.deleted }))).toEqual([
        { id: x, deleted: true },
        { id: y, deleted: false },
      ]);
      expect(rows[1]!.title).toBe('y from b');
      // Postgres counts its deadlocks a little after the fact.
      if ((await deadlocks()) > before) break;
      await new Promise((r) => setTimeout(r, 600));
      if ((await deadlocks()) > before) break;
    }
    expect(await deadlocks(), 'no round deadlocked: the test proved nothing').toBeGreaterThan(before);
  }, 60_000);
});
