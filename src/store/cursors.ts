import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { peerCursors } from '../db/schema.js';
import { FEED_START, belowHorizon, type FeedPosition } from './feed.js';

export interface PeerCursor extends FeedPosition {
  peerId: string;
  lastAckAt: string | null;
  lastError: string | null;
  lastErrorClass: string | null;
  retryAt: string | null;
  /** Push attempts failed in a row since the last ack (0: the last push succeeded). */
  failureStreak: number;
  /** When the last error was recorded (null while there is none). */
  lastErrorAt: string | null;
}

const columns = {
  peerId: peerCursors.peerId,
  txid: sql<string>`${peerCursors.txid}::text`,
  seq: sql<string>`${peerCursors.seq}::text`,
  lastAckAt: peerCursors.lastAckAt,
  lastError: peerCursors.lastError,
  lastErrorClass: peerCursors.lastErrorClass,
  retryAt: peerCursors.retryAt,
  failureStreak: peerCursors.failureStreak,
  // Only recordPeerError writes an error and every other write clears it, so while one is
  // set, updated_at is when it was recorded.
  lastErrorAt: sql<string | null>`CASE WHEN ${peerCursors.lastError} IS NULL THEN NULL ELSE ${peerCursors.updatedAt} END`,
};

/** A peer's delivery cursor; a new peer starts at the beginning of the feed (it gets everything). */
export async function getCursor(db: Db, peerId: string): Promise<PeerCursor> {
  const read = async () => (await db.select(columns).from(peerCursors).where(eq(peerCursors.peerId, peerId)))[0];
  // Read first: a push run asks before every batch, and the row exists after the first.
  let row = await read();
  if (!row) {
    await db.insert(peerCursors).values({ peerId }).onConflictDoNothing();
    row = await read();
  }
  return row ?? { peerId, ...FEED_START, lastAckAt: null, lastError: null, lastErrorClass: null, retryAt: null, failureStreak: 0, lastErrorAt: null };
}

export async function listCursors(db: Db): Promise<PeerCursor[]> {
  return db.select(columns).from(peerCursors);
}

/**
 * Moves the cursor forward only: two runners for one peer (a stalled job re-run) can
 * never move it back. Clears the peer's error state.
 */
export async function advanceCursor(db: Db, peerId: string, to: FeedPosition): Promise<boolean> {
  const res = await db.execute(sql`
    UPDATE ${peerCursors}
    SET txid = ${to.txid}::xid8, seq = ${to.seq}::bigint, last_ack_at = now(), last_error = NULL,
        last_error_class = NULL, retry_at = NULL, failure_streak = 0, updated_at = now()
    WHERE peer_id = ${peerId} AND (txid, seq) < (${to.txid}::xid8, ${to.seq}::bigint)`);
  return res.count > 0;
}

export async function recordPeerAck(db: Db, peerId: string): Promise<void> {
  await db.update(peerCursors).set({ lastAckAt: sql`now()`, lastError: null, lastErrorClass: null, retryAt: null, failureStreak: 0, updatedAt: sql`now()` }).where(eq(peerCursors.peerId, peerId));
}

export async function recordPeerError(db: Db, peerId: string, failureClass: string, error: string, retryAfterMs?: number): Promise<void> {
  await db
    .update(peerCursors)
    .set({
      lastError: error.slice(0, 2000),
      lastErrorClass: failureClass,
      retryAt: retryAfterMs === undefined ? null : sql`now() + ${`${retryAfterMs} milliseconds`}::interval`,
      failureStreak: sql`${peerCursors.failureStreak} + 1`,
      updatedAt: sql`now()`,
    })
    .where(eq(peerCursors.peerId, peerId));
}

/** Peers whose cursor is behind the feed head and who are not in a back-off window. */
export async function peersBehind(db: Db, peerIds: string[]): Promise<string[]> {
  if (peerIds.length === 0) return [];
  for (const p of peerIds) await db.insert(peerCursors).values({ peerId: p }).onConflictDoNothing();
  const behind = await db.execute<{ peer_id: string }>(sql`
    SELECT c.peer_id FROM ${peerCursors} c
    WHERE c.peer_id = ANY(${sql`ARRAY[${sql.join(peerIds.map((p) => sql`${p}`), sql`, `)}]::text[]`})
      AND (c.retry_at IS NULL OR c.retry_at <= now())
      AND (EXISTS (
        SELECT 1 FROM change_feed f
        WHERE (f.txid, f.seq) > (c.txid, c.seq) AND ${belowHorizon('f')})
        -- Behind the retained horizon (even with the feed emptied): a snapshot push is due.
        OR EXISTS (SELECT 1 FROM feed_horizon h WHERE h.id = 1 AND (c.txid, c.seq) < (h.pruned_txid, h.pruned_seq)))`);
  return behind.map((r) => r.peer_id);
}

/** Whether our last push to, or pull from, the peer failed: contact from it means it is back. */
export async function peerWasFailing(db: Db, peerId: string): Promise<boolean> {
  const rows = await db.execute<{ failing: boolean }>(sql`
    SELECT EXISTS (SELECT 1 FROM ${peerCursors} WHERE peer_id = ${peerId} AND last_error_class IS NOT NULL)
        OR EXISTS (SELECT 1 FROM peer_watermarks WHERE peer_id = ${peerId} AND last_error IS NOT NULL
                   AND last_error NOT LIKE 'row % failed to apply%') AS failing`);
  return rows[0]?.failing === true;
}

/**
 * Push lag per peer: change-feed rows after its cursor (counted up to a cap) and the age
 * of the oldest of them. Rows from the peer itself count until the cursor passes them.
 */
export async function peerLag(db: Db, peerIds: string[], cap = 1_000_000): Promise<Map<string, { rows: number; seconds: number }>> {
  const out = new Map<string, { rows: number; seconds: number }>();
  for (const peerId of peerIds) {
    const rows = await db.execute<{ n: number; oldest: number | null }>(sql`
      SELECT count(*)::int AS n, EXTRACT(EPOCH FROM now() - min(committed_at))::float8 AS oldest FROM (
        SELECT f.committed_at FROM change_feed f, ${peerCursors} c
        WHERE c.peer_id = ${peerId} AND (f.txid, f.seq) > (c.txid, c.seq)
        ORDER BY f.txid, f.seq LIMIT ${cap}) behind`);
    const r = rows[0];
    out.set(peerId, { rows: r?.n ?? 0, seconds: r?.oldest ?? 0 });
  }
  return out;
}
