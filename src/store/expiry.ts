import { sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { changeFeed, memories, peerCursors, tombstoneGc } from '../db/schema.js';
import { inTextList } from './lists.js';
import { FEED_START, comparePositions, type FeedPosition } from './feed.js';
import { normalizeDbTime } from './memories.js';
import { parseTimestamp } from '../memory/time.js';

/*
 * Tier expiry sweep and tombstone GC: local deletes in bounded batches, each batch its own
 * short transaction (rows taken with SKIP LOCKED, so a concurrent write or apply of a row
 * is never waited on and the row is simply left for the next run). Neither appends to
 * the change feed: nothing is replicated (docs/operations.md, "Tier expiry", "Tombstone GC").
 */

/**
 * Deletes up to `limit` live memories whose expires_at has passed (oldest expiry first).
 * Every node holding the same version expires it at the same instant, so this is a local
 * delete (no tombstone, no feed entry), as upstream's GC. Returns the ids deleted.
 */
export async function sweepExpiredBatch(db: Db, limit: number): Promise<string[]> {
  // The batch is materialized once: as an IN (subquery) the planner may re-run the
  // LIMITed subquery for every row it joins, deleting far more than `limit`.
  const rows = await db.execute<{ id: string }>(sql`
    WITH batch AS MATERIALIZED (
      SELECT id FROM ${memories}
      WHERE deleted_at IS NULL AND expires_at IS NOT NULL AND expires_at <= now()
      ORDER BY expires_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED)
    DELETE FROM ${memories} m USING batch
    WHERE m.id = batch.id AND m.deleted_at IS NULL AND m.expires_at <= now()
    RETURNING m.id`);
  return rows.map((r) => r.id);
}

/** The slowest delivery cursor among `peerIds` (a peer without one starts at the beginning). */
export async function slowestCursor(db: Db, peerIds: string[]): Promise<FeedPosition | null> {
  if (peerIds.length === 0) return null;
  const rows = await db
    .select({ peerId: peerCursors.peerId, txid: sql<string>`${peerCursors.txid}::text`, seq: sql<string>`${peerCursors.seq}::text` })
    .from(peerCursors)
    .where(inTextList(peerCursors.peerId, peerIds));
  if (rows.length < new Set(peerIds).size) return FEED_START;
  return rows.reduce<FeedPosition>((min, r) => (comparePositions(r, min) < 0 ? { txid: r.txid, seq: r.seq } : min), { txid: rows[0]!.txid, seq: rows[0]!.seq });
}

/**
 * Deletes up to `limit` tombstones older than `horizon` (now - TOMBSTONE_GRACE) whose
 * feed entries every configured peer's cursor has passed (`slowest`; null: no peers), and
 * raises the collected-through mark in the same transaction. Returns the ids collected.
 */
export async function collectTombstonesBatch(db: Db, horizon: string, slowest: FeedPosition | null, limit: number): Promise<string[]> {
  // An entry after the slowest cursor is one some peer has not been sent yet.
  const undelivered = slowest
    ? sql`AND NOT EXISTS (SELECT 1 FROM ${changeFeed} f WHERE f.memory_id = m.id AND (f.txid, f.seq) > (${slowest.txid}::xid8, ${slowest.seq}::bigint))`
    : sql``;
  // One statement: the delete and the raised mark commit together (an apply that finds
  // the tombstone gone also finds the mark covering it, src/store/replica.ts).
  const rows = await db.execute<{ id: string }>(sql`
    WITH batch AS MATERIALIZED (
      SELECT m.id FROM ${memories} m
      WHERE m.deleted_at IS NOT NULL AND m.deleted_at < ${horizon}::timestamptz ${undelivered}
      ORDER BY m.deleted_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED),
    gone AS (
      DELETE FROM ${memories} t USING batch
      WHERE t.id = batch.id AND t.deleted_at IS NOT NULL
      RETURNING t.id, t.deleted_at),
    mark AS (
      INSERT INTO ${tombstoneGc} (id, collected_through)
      SELECT 1, max(deleted_at) FROM gone HAVING count(*) > 0
      ON CONFLICT (id) DO UPDATE SET collected_through = GREATEST(${tombstoneGc}.collected_through, excluded.collected_through), updated_at = now())
    SELECT id FROM gone`);
  return rows.map((r) => r.id);
}

/** The newest deleted_at of any tombstone this node collected, in microseconds (null: none yet). */
export async function collectedThrough(db: Db | Tx): Promise<number | null> {
  const rows = await db.execute<{ at: string }>(sql`SELECT collected_through::text AS at FROM ${tombstoneGc} WHERE id = 1`);
  return rows[0] ? parseTimestamp(normalizeDbTime(rows[0].at)) : null;
}

/** Tombstones held now (the tombstone-count gauge). */
export async function tombstoneCount(db: Db): Promise<number> {
  const rows = await db.execute<{ n: number }>(sql`SELECT count(*)::int AS n FROM ${memories} WHERE deleted_at IS NOT NULL`);
  return rows[0]?.n ?? 0;
}
