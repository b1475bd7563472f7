import { getTableName, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { changeFeed } from '../db/schema.js';

/** A change to a memory id: its content, its tombstone, its archive register, its outgoing links. */
export type ChangeOp = 'upsert' | 'delete' | 'archive' | 'restore' | 'link';

/** A position in the change feed: (txid, seq), compared as a pair. */
export interface FeedPosition {
  txid: string;
  seq: string;
}

export const FEED_START: FeedPosition = { txid: '0', seq: '0' };

export function comparePositions(a: FeedPosition, b: FeedPosition): number {
  const t = BigInt(a.txid) - BigInt(b.txid);
  if (t !== 0n) return t < 0n ? -1 : 1;
  const s = BigInt(a.seq) - BigInt(b.seq);
  return s === 0n ? 0 : s < 0n ? -1 : 1;
}

/** Opaque cursor form served to peers: `v1.<txid>.<seq>`. */
export function encodeCursor(p: FeedPosition): string {
  return `v1.${p.txid}.${p.seq}`;
}

export function decodeCursor(cursor: string): FeedPosition | null {
  const m = /^v1\.(\d{1,20})\.(\d{1,20})$/.exec(cursor);
  if (!m) return null;
  const [, txid, seq] = m as unknown as [string, string, string];
  if (BigInt(txid) > 0xffffffffffffffffn || BigInt(seq) > 0x7fffffffffffffffn) return null;
  return { txid: BigInt(txid).toString(), seq: BigInt(seq).toString() };
}

/**
 * The commit-order rule (docs/invariants.md, point 4) in one place: a feed row is visible only
 * once every transaction that could commit behind it has finished (txid below the
 * snapshot's xmin). Every reader that moves or reports a position uses it.
 */
export const belowHorizon = (alias: string) => sql.raw(`${alias}.txid < pg_snapshot_xmin(pg_current_snapshot())`);

/** Appends change rows in the caller's transaction; returns the last position written. */
export async function appendChanges(
  tx: Db | Tx,
  changes: Array<{ memoryId: string; op: ChangeOp; originPeer?: string | null }>,
): Promise<FeedPosition | null> {
  if (changes.length === 0) return null;
  // One JSON parameter however many rows (see store/memories.ts, recordsetJson).
  const json = JSON.stringify(changes.map((c) => ({ memory_id: c.memoryId, op: c.op, origin_peer: c.originPeer ?? null })));
  const rows = await tx.execute<{ txid: string; seq: string }>(sql`
    INSERT INTO ${changeFeed} (memory_id, op, origin_peer)
    SELECT r.memory_id, r.op, r.origin_peer FROM jsonb_to_recordset(${json}::jsonb) AS r(memory_id text, op text, origin_peer text)
    RETURNING txid::text AS txid, seq::text AS seq`);
  return lastPositionOf(rows);
}

/**
 * The tail of a statement that appends a change row for every id the statement's `cte`
 * returns (`WITH cte AS (INSERT ... RETURNING id) <this>`): the write and its feed rows in
 * one round trip. `origin`: the placeholder of the origin peer (`$2`) or `NULL`. The text
 * is fixed per call site, so the statement can be prepared. Returns `memory_id`, `txid`,
 * `seq` per row appended.
 */
export const appendChangesFrom = (cte: string, op: ChangeOp, origin: `$${number}` | 'NULL') =>
  `INSERT INTO ${getTableName(changeFeed)} (memory_id, op, origin_peer) SELECT id, '${op}', ${origin}::text FROM ${cte} RETURNING memory_id, txid::text AS txid, seq::text AS seq`;

/** The latest of the positions (null for none). */
export function lastPositionOf(rows: Iterable<FeedPosition | null>): FeedPosition | null {
  let last: FeedPosition | null = null;
  for (const r of rows) {
    if (!r) continue;
    const p = { txid: String(r.txid), seq: String(r.seq) };
    if (!last || comparePositions(p, last) > 0) last = p;
  }
  return last;
}

export interface FeedEntry extends FeedPosition {
  memoryId: string;
  op: ChangeOp;
  originPeer: string | null;
  committedAt: string;
}

/**
 * Changes after `after`, in feed order, only from transactions older than the snapshot's
 * xmin: every such transaction has finished, and any later commit gets a larger txid,
 * so nothing can ever appear behind the returned positions.
 */
export async function readFeed(db: Db | Tx, after: FeedPosition, limit: number): Promise<FeedEntry[]> {
  // Text aliases differ from the column names: ORDER BY must sort the numbers, not strings.
  const rows = await db.execute<{ txid_text: string; seq_text: string; memory_id: string; op: ChangeOp; origin_peer: string | null; committed_at: string }>(sql`
    SELECT f.txid::text AS txid_text, f.seq::text AS seq_text, f.memory_id, f.op, f.origin_peer, f.committed_at::text AS committed_at
    FROM ${changeFeed} f
    WHERE (f.txid, f.seq) > (${after.txid}::xid8, ${after.seq}::bigint) AND ${belowHorizon('f')}
    ORDER BY f.txid, f.seq
    LIMIT ${limit}`);
  return rows.map((r) => ({ txid: r.txid_text, seq: r.seq_text, memoryId: r.memory_id, op: r.op, originPeer: r.origin_peer, committedAt: r.committed_at }));
}

/** The position of the newest visible change (what a fully caught-up reader would hold). */
export async function feedHead(db: Db | Tx): Promise<FeedPosition> {
  const rows = await db.execute<{ txid_text: string; seq_text: string }>(sql`
    SELECT f.txid::text AS txid_text, f.seq::text AS seq_text FROM ${changeFeed} f
    WHERE ${belowHorizon('f')}
    ORDER BY f.txid DESC, f.seq DESC LIMIT 1`);
  return rows[0] ? { txid: rows[0].txid_text, seq: rows[0].seq_text } : FEED_START;
}

/** Visible changes after a position, counted up to `cap` (lag figures). */
export async function countAfter(db: Db | Tx, after: FeedPosition, cap: number): Promise<number> {
  const rows = await db.execute<{ n: number }>(sql`
    SELECT count(*)::int AS n FROM (
      SELECT 1 FROM ${changeFeed} f
      WHERE (f.txid, f.seq) > (${after.txid}::xid8, ${after.seq}::bigint) AND ${belowHorizon('f')}
      LIMIT ${cap}) behind`);
  return rows[0]?.n ?? 0;
}
