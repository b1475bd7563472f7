import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { changeFeed, feedHorizon, feedSnapshots, memories } from '../db/schema.js';
import { FEED_START, belowHorizon, comparePositions, feedHead, type FeedPosition } from './feed.js';

/**
 * Change-feed retention (docs/operations.md, "Change-feed retention and snapshot
 * bootstrap"). Entries are pruned as a prefix of the feed, in (txid, seq) order, so one
 * position (the horizon) tells every reader whether it missed anything: a reader at or
 * after it has not; a reader before it must bootstrap from a snapshot.
 */

/** Every entry at or before this position is gone (FEED_START: nothing pruned yet). */
export async function readHorizon(db: Db | Tx): Promise<FeedPosition> {
  const rows = await db.execute<{ txid: string; seq: string }>(sql`SELECT pruned_txid::text AS txid, pruned_seq::text AS seq FROM ${feedHorizon} WHERE id = 1`);
  return rows[0] ? { txid: rows[0].txid, seq: rows[0].seq } : FEED_START;
}

/** Whether a reader at `at` (it has everything up to and including it) missed pruned entries. */
export const behindHorizon = (at: FeedPosition, horizon: FeedPosition) => comparePositions(at, horizon) < 0;

export interface PruneRules {
  nowMs: number;
  retentionMs: number;
  /** Beyond this age an entry is pruned even if a peer's cursor has not passed it. */
  maxLagMs: number;
  /** Delivery cursors of the configured peers (active and paused). */
  cursors: FeedPosition[];
  /** Positions of snapshots in progress: entries after them are kept. */
  snapshots: FeedPosition[];
}

export interface PrunableEntry extends FeedPosition {
  committedAtMs: number;
}

/**
 * Whether one entry may go: older than the retention window, not after a snapshot in
 * progress, and passed by every peer's cursor, unless it is older than the lag bound (a
 * peer that far behind stops holding the feed and is bootstrapped when it returns).
 */
export function prunable(e: PrunableEntry, r: PruneRules): boolean {
  const age = r.nowMs - e.committedAtMs;
  if (age <= r.retentionMs) return false;
  if (r.snapshots.some((s) => comparePositions(e, s) > 0)) return false;
  if (age > r.maxLagMs) return true;
  return r.cursors.every((c) => comparePositions(c, e) >= 0);
}

/** The leading run of `entries` (in feed order) that may go: pruning stops at the first that may not. */
export function prunablePrefix<E extends PrunableEntry>(entries: E[], r: PruneRules): E[] {
  const out: E[] = [];
  for (const e of entries) {
    if (!prunable(e, r)) break;
    out.push(e);
  }
  return out;
}

/** Cursors of the configured peers (rows created for peers with none yet: a new peer holds from the start). */
async function configuredCursors(tx: Tx, peerIds: string[]): Promise<FeedPosition[]> {
  if (peerIds.length === 0) return [];
  const ids = sql`ARRAY[${sql.join(peerIds.map((p) => sql`${p}`), sql`, `)}]::text[]`;
  const rows = await tx.execute<{ txid: string; seq: string }>(sql`
    SELECT COALESCE(c.txid, '0'::xid8)::text AS txid, COALESCE(c.seq, 0)::text AS seq
    FROM unnest(${ids}) AS p(id) LEFT JOIN peer_cursors c ON c.peer_id = p.id`);
  return rows.map((r) => ({ txid: r.txid, seq: r.seq }));
}

/** Positions of snapshots touched within `ttlMs`. */
async function liveSnapshots(tx: Db | Tx, ttlMs: number): Promise<FeedPosition[]> {
  const rows = await tx.execute<{ txid: string; seq: string }>(sql`
    SELECT txid::text AS txid, seq::text AS seq FROM ${feedSnapshots}
    WHERE touched_at > now() - ${`${ttlMs} milliseconds`}::interval`);
  return rows.map((r) => ({ txid: r.txid, seq: r.seq }));
}

export interface PruneSettings {
  retentionMs: number;
  maxLagMs: number;
  snapshotTtlMs: number;
  /** Entries deleted per transaction. */
  batch: number;
  /** Configured peers (active and paused): their cursors hold the feed. */
  peerIds: string[];
}

export interface PruneBatch {
  deleted: number;
  horizon: FeedPosition;
  /** More entries may be prunable right now (the batch was full). */
  more: boolean;
}

/**
 * One short transaction: reads up to `batch` of the oldest visible entries, deletes the
 * leading run that may go and moves the horizon to its last entry. Only visible entries
 * (below the snapshot xmin) are considered, so nothing can commit behind the new horizon.
 * Another pruner waits on the horizon row's lock rather than deleting the same rows.
 */
export async function pruneBatch(db: Db, s: PruneSettings): Promise<PruneBatch> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`INSERT INTO ${feedHorizon} (id) VALUES (1) ON CONFLICT DO NOTHING`);
    await tx.execute(sql`SELECT 1 FROM ${feedHorizon} WHERE id = 1 FOR UPDATE`);
    const rows = await tx.execute<{ txid: string; seq: string; at_ms: number; now_ms: number }>(sql`
      SELECT f.txid::text AS txid, f.seq::text AS seq,
             (EXTRACT(EPOCH FROM f.committed_at) * 1000)::float8 AS at_ms, (EXTRACT(EPOCH FROM now()) * 1000)::float8 AS now_ms
      FROM ${changeFeed} f WHERE ${belowHorizon('f')}
      ORDER BY f.txid, f.seq LIMIT ${s.batch}`);
    const rules: PruneRules = { nowMs: rows[0]?.now_ms ?? Date.now(), retentionMs: s.retentionMs, maxLagMs: s.maxLagMs, cursors: await configuredCursors(tx, s.peerIds), snapshots: await liveSnapshots(tx, s.snapshotTtlMs) };
    const gone = prunablePrefix(
      rows.map((r) => ({ txid: r.txid, seq: r.seq, committedAtMs: r.at_ms })),
      rules,
    );
    const last = gone.at(-1);
    if (!last) return { deleted: 0, horizon: await readHorizon(tx), more: false };
    const res = await tx.execute(sql`
      DELETE FROM ${changeFeed} WHERE (txid, seq) <= (${last.txid}::xid8, ${last.seq}::bigint) AND ${belowHorizon('change_feed')}`);
    await tx.execute(sql`
      UPDATE ${feedHorizon} SET pruned_txid = ${last.txid}::xid8, pruned_seq = ${last.seq}::bigint,
        pruned_rows = pruned_rows + ${res.count}, updated_at = now()
      WHERE id = 1 AND (pruned_txid, pruned_seq) < (${last.txid}::xid8, ${last.seq}::bigint)`);
    return { deleted: res.count, horizon: last, more: gone.length === rows.length && rows.length === s.batch };
  });
}

/** Drops snapshots nobody touched within `ttlMs` (they no longer hold the feed anyway). */
export async function dropIdleSnapshots(db: Db, ttlMs: number): Promise<number> {
  const res = await db.execute(sql`DELETE FROM ${feedSnapshots} WHERE touched_at <= now() - ${`${ttlMs} milliseconds`}::interval`);
  return res.count;
}

export interface FeedFigures {
  rows: number;
  /** Oldest retained entry (null: the feed is empty). */
  oldest: (FeedPosition & { ageSeconds: number }) | null;
  horizon: FeedPosition;
  prunedRows: number;
}

export async function feedFigures(db: Db): Promise<FeedFigures> {
  const [count] = await db.execute<{ n: number }>(sql`SELECT count(*)::float8 AS n FROM ${changeFeed}`);
  const [oldest] = await db.execute<{ txid: string; seq: string; age: number }>(sql`
    SELECT txid::text AS txid, seq::text AS seq, EXTRACT(EPOCH FROM now() - committed_at)::float8 AS age
    FROM ${changeFeed} ORDER BY txid, seq LIMIT 1`);
  const [h] = await db.execute<{ txid: string; seq: string; pruned: number }>(sql`SELECT pruned_txid::text AS txid, pruned_seq::text AS seq, pruned_rows::float8 AS pruned FROM ${feedHorizon} WHERE id = 1`);
  return {
    rows: count?.n ?? 0,
    oldest: oldest ? { txid: oldest.txid, seq: oldest.seq, ageSeconds: Math.max(0, oldest.age) } : null,
    horizon: h ? { txid: h.txid, seq: h.seq } : FEED_START,
    prunedRows: h?.pruned ?? 0,
  };
}

/** A position as one number for a gauge: the seq (unique and increasing within one txid order, enough to watch it move). */
export const positionGaugeValue = (p: FeedPosition) => Number(p.seq);

// --- Snapshots ---------------------------------------------------------------------------

export interface Snapshot {
  holder: string;
  snapshotId: string;
  position: FeedPosition;
  afterId: string | null;
  rows: number;
}

const snapshotOf = (r: { holder: string; snapshot_id: string; txid: string; seq: string; after_id: string | null; rows: number }): Snapshot => ({
  holder: r.holder,
  snapshotId: r.snapshot_id,
  position: { txid: r.txid, seq: r.seq },
  afterId: r.after_id,
  rows: r.rows,
});

/**
 * Starts (or restarts) `holder`'s snapshot at the feed head: everything at or before it
 * has committed and is in `memories`; anything committed later has a feed entry after it
 * (the commit-order rule), which retention keeps while the snapshot is live. It takes the
 * horizon row's lock, as a prune batch does: no batch that has not seen the snapshot can
 * run between reading the head and committing the snapshot.
 */
export async function startSnapshot(db: Db, holder: string): Promise<Snapshot> {
  const id = randomUUID();
  return db.transaction(async (tx) => {
    await tx.execute(sql`INSERT INTO ${feedHorizon} (id) VALUES (1) ON CONFLICT DO NOTHING`);
    await tx.execute(sql`SELECT 1 FROM ${feedHorizon} WHERE id = 1 FOR UPDATE`);
    // An emptied feed has no head entry: the horizon is then where the copy stands.
    const fed = await feedHead(tx);
    const horizon = await readHorizon(tx);
    const head = comparePositions(fed, horizon) < 0 ? horizon : fed;
    const rows = await tx.execute<{ holder: string; snapshot_id: string; txid: string; seq: string; after_id: string | null; rows: number }>(sql`
      INSERT INTO ${feedSnapshots} (holder, snapshot_id, txid, seq) VALUES (${holder}, ${id}, ${head.txid}::xid8, ${head.seq}::bigint)
      ON CONFLICT (holder) DO UPDATE SET snapshot_id = EXCLUDED.snapshot_id, txid = EXCLUDED.txid, seq = EXCLUDED.seq, after_id = NULL, rows = 0, created_at = now(), touched_at = now()
      RETURNING holder, snapshot_id, txid::text AS txid, seq::text AS seq, after_id, rows`);
    return snapshotOf(rows[0]!);
  });
}

/**
 * `holder`'s snapshot, if it is still live (touched within `ttlMs`) and, when given, has
 * this id; touching it keeps it live. Null: gone, replaced or idle too long.
 */
export async function touchSnapshot(db: Db, holder: string, ttlMs: number, snapshotId?: string, progress?: { afterId: string; rows: number }): Promise<Snapshot | null> {
  const rows = await db.execute<{ holder: string; snapshot_id: string; txid: string; seq: string; after_id: string | null; rows: number }>(sql`
    UPDATE ${feedSnapshots} SET touched_at = now()
      ${progress ? sql`, after_id = ${progress.afterId}, rows = rows + ${progress.rows}` : sql``}
    WHERE holder = ${holder} AND touched_at > now() - ${`${ttlMs} milliseconds`}::interval
      ${snapshotId !== undefined ? sql`AND snapshot_id = ${snapshotId}` : sql``}
    RETURNING holder, snapshot_id, txid::text AS txid, seq::text AS seq, after_id, rows`);
  return rows[0] ? snapshotOf(rows[0]) : null;
}

/**
 * `holder`'s snapshot is done with once its reader reads the feed at or after its
 * position: it no longer needs the feed held (without this it would hold it until its TTL).
 */
export async function endSnapshotPassed(db: Db, holder: string, at: FeedPosition): Promise<void> {
  await db.execute(sql`DELETE FROM ${feedSnapshots} WHERE holder = ${holder} AND (txid, seq) <= (${at.txid}::xid8, ${at.seq}::bigint)`);
}

export async function endSnapshot(db: Db, holder: string, snapshotId: string): Promise<void> {
  await db.execute(sql`DELETE FROM ${feedSnapshots} WHERE holder = ${holder} AND snapshot_id = ${snapshotId}`);
}

/**
 * Ids of the next rows of a snapshot after `afterId`, in id order: live memories not
 * expired, and tombstones (an expired memory is never served, docs/invariants.md).
 */
export async function snapshotIds(db: Db, afterId: string | null, limit: number): Promise<string[]> {
  const rows = await db.execute<{ id: string }>(sql`
    SELECT m.id FROM ${memories} m
    WHERE ${afterId === null ? sql`TRUE` : sql`m.id > ${afterId}`}
      AND (m.deleted_at IS NOT NULL OR m.expires_at IS NULL OR m.expires_at > now())
    ORDER BY m.id LIMIT ${limit}`);
  return rows.map((r) => r.id);
}
