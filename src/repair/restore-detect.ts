import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { changeFeed } from '../db/schema.js';
import { FEED_START, comparePositions, type FeedPosition } from '../store/feed.js';

/*
 * A memfed peer's pull cursor into this node is a position this node handed out: the last
 * feed entry of a page it served. If this node no longer has that entry while it still has
 * entries before it (so retention did not prune it: pruning removes the oldest first), this
 * node lost feed history: it was restored from an older backup, or the feed was truncated.
 * After an in-place pg_dump restore the feed's sequence restarts from the dumped value while
 * transaction ids keep rising in the cluster, so the positions written since sort after the
 * peer's cursor (it skips none of them), but whatever this node held after the dump is gone:
 * only anti-entropy repair brings it back (docs/operations.md, Anti-entropy repair).
 */
export async function cursorShowsLostHistory(db: Db, cursor: FeedPosition): Promise<boolean> {
  if (comparePositions(cursor, FEED_START) === 0) return false;
  const rows = await db.execute<{ here: boolean; before: boolean }>(sql`
    SELECT EXISTS (SELECT 1 FROM ${changeFeed} f WHERE f.txid = ${cursor.txid}::xid8 AND f.seq = ${cursor.seq}::bigint) AS here,
           EXISTS (SELECT 1 FROM ${changeFeed} f WHERE (f.txid, f.seq) < (${cursor.txid}::xid8, ${cursor.seq}::bigint)) AS before`);
  const r = rows[0];
  return r !== undefined && !r.here && r.before;
}
