import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendChanges } from '../../src/store/feed.js';
import { pruneBatch, readHorizon, startSnapshot, type PruneSettings } from '../../src/store/retention.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/env.js';

/*
 * Pruning against real Postgres: what goes is a prefix of the feed past every peer
 * cursor and older than the window, deleted in batches, with the horizon moved in the
 * same transaction.
 */
let db: TestDatabase;
const settings = (over: Partial<PruneSettings> = {}): PruneSettings => ({ retentionMs: 60_000, maxLagMs: 3_600_000, snapshotTtlMs: 60_000, batch: 4, peerIds: ['p1', 'p2'], ...over });
const seqs = async () => (await db.database.sql`SELECT seq::text AS s FROM change_feed ORDER BY txid, seq`).map((r) => Number(r.s));
const setCursor = (peer: string, txid: string, seq: string) => db.database.sql`INSERT INTO peer_cursors (peer_id, txid, seq) VALUES (${peer}, ${txid}::xid8, ${seq}::bigint) ON CONFLICT (peer_id) DO UPDATE SET txid = EXCLUDED.txid, seq = EXCLUDED.seq`;
/** Prunes until a batch deletes nothing (a transaction open elsewhere on the shared server can hold entries back briefly). */
async function pruneAll(s: PruneSettings, expectLeft: number) {
  const batches: number[] = [];
  await waitFor(async () => {
    for (;;) {
      const b = await pruneBatch(db.database.db, s);
      if (b.deleted > 0) batches.push(b.deleted);
      if (!b.more) break;
    }
    return (await seqs()).length === expectLeft;
  }, { timeoutMs: 20_000, intervalMs: 200, what: `${expectLeft} feed entries left` });
  return batches;
}

beforeAll(async () => {
  db = await createTestDatabase();
  // 20 entries, one transaction each (so they have distinct txids).
  for (let i = 0; i < 20; i++) await db.database.db.transaction((tx) => appendChanges(tx, [{ memoryId: `m${i}`, op: 'upsert' }]));
});
afterAll(async () => db?.drop());

describe('feed pruning', () => {
  it('keeps everything inside the retention window, whatever the cursors', async () => {
    const all = await seqs();
    const last = (await db.database.sql`SELECT txid::text AS t, seq::text AS s FROM change_feed ORDER BY txid DESC, seq DESC LIMIT 1`)[0]!;
    for (const p of ['p1', 'p2']) await setCursor(p, last.t as string, last.s as string);
    expect((await pruneBatch(db.database.db, settings())).deleted).toBe(0);
    expect(await seqs()).toEqual(all);
  });

  it('past the window, deletes in batches up to the slowest cursor and moves the horizon there', async () => {
    await db.database.sql`UPDATE change_feed SET committed_at = now() - interval '10 minutes'`;
    const all = await seqs();
    const pos = async (seq: number) => (await db.database.sql`SELECT txid::text AS t, seq::text AS s FROM change_feed WHERE seq = ${seq}`)[0]!;
    const at = await pos(all[10]!);
    await setCursor('p2', at.t as string, at.s as string);
    const batches = await pruneAll(settings(), 9);
    expect(batches.every((n) => n <= 4)).toBe(true);
    expect(batches.length).toBeGreaterThanOrEqual(3);
    expect(await seqs()).toEqual(all.slice(11));
    expect(await readHorizon(db.database.db)).toEqual({ txid: at.t, seq: at.s });
    const [h] = await db.database.sql`SELECT pruned_rows::int AS n FROM feed_horizon`;
    expect(h!.n).toBe(11);
  });

  it('a peer with no cursor row yet (just added) holds the feed from its start', async () => {
    expect((await pruneBatch(db.database.db, settings({ peerIds: ['p1', 'p2', 'new-peer'] }))).deleted).toBe(0);
  });

  it('a snapshot in progress keeps what follows its position, beyond the lag bound too; the lag bound frees a lagging cursor otherwise', async () => {
    const before = await seqs();
    const snap = await startSnapshot(db.database.db, 'serve:someone');
    await db.database.db.transaction((tx) => appendChanges(tx, [{ memoryId: 'after-snapshot', op: 'upsert' }]));
    await db.database.sql`UPDATE change_feed SET committed_at = now() - interval '2 hours'`;
    // p2 lags (cursor at the horizon), beyond the 1 h lag bound: it no longer holds the feed,
    // but the snapshot still holds what follows its position.
    await pruneAll(settings(), 1);
    expect((await seqs())[0]).toBeGreaterThan(before.at(-1)!);
    expect(await readHorizon(db.database.db)).toEqual(snap.position);
  });
});
