import { eq, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { peerWatermarks } from '../db/schema.js';

export interface Watermark {
  peerId: string;
  cursor: string | null;
  since: string | null;
  lastSuccessAt: string | null;
  lagRows: number;
  lastRowAt: string | null;
  lastError: string | null;
  lastPullAt: string | null;
  /** Pulls failed or halted in a row since the last successful one (0: the last pull succeeded). */
  failureStreak: number;
  /** A snapshot bootstrap in progress: its next page token (null: none or not yet) and position. */
  snapshotToken?: string | null;
  snapshotCursor?: string | null;
}

/** Watermark times as epoch seconds (for metrics). */
export interface WatermarkTimes {
  peerId: string;
  lagRows: number;
  lastSuccessEpoch: number | null;
  lastRowEpoch: number | null;
}

/**
 * How far catch-up is behind, in seconds: the age of the newest row applied from the peer
 * while the last pull left rows behind; 0 when caught up.
 */
export function catchupLagSeconds(lagRows: number, lastRowEpoch: number | null, nowEpoch: number): number {
  return lagRows > 0 && lastRowEpoch ? Math.max(0, nowEpoch - lastRowEpoch) : 0;
}

export async function watermarkTimes(db: Db): Promise<WatermarkTimes[]> {
  return db
    .select({
      peerId: peerWatermarks.peerId,
      lagRows: peerWatermarks.lagRows,
      lastSuccessEpoch: sql<number | null>`extract(epoch from ${peerWatermarks.lastSuccessAt})::float8`,
      lastRowEpoch: sql<number | null>`extract(epoch from ${peerWatermarks.lastRowAt})::float8`,
    })
    .from(peerWatermarks);
}

const columns = {
  peerId: peerWatermarks.peerId,
  cursor: peerWatermarks.cursor,
  since: peerWatermarks.since,
  lastSuccessAt: peerWatermarks.lastSuccessAt,
  lagRows: peerWatermarks.lagRows,
  lastRowAt: peerWatermarks.lastRowAt,
  lastError: peerWatermarks.lastError,
  lastPullAt: peerWatermarks.lastPullAt,
  failureStreak: peerWatermarks.failureStreak,
  snapshotToken: peerWatermarks.snapshotToken,
  snapshotCursor: peerWatermarks.snapshotCursor,
};

export async function getWatermark(db: Db, peerId: string): Promise<Watermark> {
  await db.insert(peerWatermarks).values({ peerId }).onConflictDoNothing();
  const [row] = await db.select(columns).from(peerWatermarks).where(eq(peerWatermarks.peerId, peerId));
  return row ?? { peerId, cursor: null, since: null, lastSuccessAt: null, lagRows: 0, lastRowAt: null, lastError: null, lastPullAt: null, failureStreak: 0 };
}

export async function listWatermarks(db: Db): Promise<Watermark[]> {
  return db.select(columns).from(peerWatermarks);
}

export class WatermarkMoved extends Error {
  constructor(peerId: string) {
    super(`catch-up watermark for ${peerId} moved under this run (another run got there first)`);
    this.name = 'WatermarkMoved';
  }
}

/**
 * Moves the watermark inside the applying transaction, compare-and-set on the value
 * the run started from: two runs for one peer can never move it backwards (the loser's
 * transaction, applies included, rolls back).
 */
export async function advanceWatermark(
  tx: Tx,
  peerId: string,
  from: { cursor: string | null; since: string | null },
  to: { cursor: string | null; since: string | null; lagRows: number; lastRowAt: string | null; halted?: string },
): Promise<void> {
  // A halted pull (a row that fails to apply) keeps the rows before it but is no success:
  // last_success_at stays put so a stale-catch-up alert sees the halt.
  const halted = to.halted ?? null;
  const res = await tx.execute(sql`
    UPDATE ${peerWatermarks}
    SET cursor = ${to.cursor}, since = ${to.since}, lag_rows = ${to.lagRows},
        last_row_at = COALESCE(${to.lastRowAt}::timestamptz, last_row_at),
        last_pull_at = now(),
        last_success_at = CASE WHEN ${halted}::text IS NULL THEN now() ELSE last_success_at END,
        last_error = ${halted},
        failure_streak = CASE WHEN ${halted}::text IS NULL THEN 0 ELSE failure_streak + 1 END, updated_at = now()
    WHERE peer_id = ${peerId} AND cursor IS NOT DISTINCT FROM ${from.cursor} AND since IS NOT DISTINCT FROM ${from.since}`);
  if (res.count !== 1) throw new WatermarkMoved(peerId);
}

/**
 * A snapshot page applied, in its applying transaction, compare-and-set like
 * advanceWatermark: `next` continues the bootstrap (the token of the next page and the
 * snapshot's position); `done` ends it, the cursor taking the snapshot's position.
 */
export async function advanceSnapshot(
  tx: Tx,
  peerId: string,
  from: { cursor: string | null; snapshotToken: string | null; snapshotCursor: string | null },
  to: { next: { token: string; snapshotCursor: string } } | { done: string },
  lastRowAt: string | null,
): Promise<void> {
  const next = 'next' in to ? to.next : null;
  const res = await tx.execute(sql`
    UPDATE ${peerWatermarks}
    SET snapshot_token = ${next?.token ?? null}, snapshot_cursor = ${next?.snapshotCursor ?? null},
        cursor = ${'done' in to ? to.done : from.cursor}, since = NULL,
        lag_rows = ${next ? 1 : 0}, last_row_at = COALESCE(${lastRowAt}::timestamptz, last_row_at),
        last_pull_at = now(), last_success_at = now(), last_error = NULL, failure_streak = 0, updated_at = now()
    WHERE peer_id = ${peerId} AND cursor IS NOT DISTINCT FROM ${from.cursor}
      AND snapshot_token IS NOT DISTINCT FROM ${from.snapshotToken} AND snapshot_cursor IS NOT DISTINCT FROM ${from.snapshotCursor}`);
  if (res.count !== 1) throw new WatermarkMoved(peerId);
}

/** Starts (or restarts) a snapshot bootstrap: the next pull asks for a new snapshot's first page. */
export async function beginSnapshot(db: Db, peerId: string, from: { cursor: string | null; snapshotToken: string | null; snapshotCursor: string | null }): Promise<void> {
  const res = await db.execute(sql`
    UPDATE ${peerWatermarks} SET snapshot_token = NULL, snapshot_cursor = ${SNAPSHOT_STARTING}, updated_at = now()
    WHERE peer_id = ${peerId} AND cursor IS NOT DISTINCT FROM ${from.cursor}
      AND snapshot_token IS NOT DISTINCT FROM ${from.snapshotToken} AND snapshot_cursor IS NOT DISTINCT FROM ${from.snapshotCursor}`);
  if (res.count !== 1) throw new WatermarkMoved(peerId);
}

/** snapshot_cursor while a bootstrap waits for its first page (no snapshot position yet). */
export const SNAPSHOT_STARTING = 'starting';

export async function recordPullSuccess(db: Db, peerId: string, lagRows: number): Promise<void> {
  await db.update(peerWatermarks).set({ lastPullAt: sql`now()`, lastSuccessAt: sql`now()`, lastError: null, lagRows, failureStreak: 0, updatedAt: sql`now()` }).where(eq(peerWatermarks.peerId, peerId));
}

export async function recordPullError(db: Db, peerId: string, error: string): Promise<void> {
  await db.update(peerWatermarks).set({ lastPullAt: sql`now()`, lastError: error.slice(0, 2000), failureStreak: sql`${peerWatermarks.failureStreak} + 1`, updatedAt: sql`now()` }).where(eq(peerWatermarks.peerId, peerId));
}
