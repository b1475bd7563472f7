import type { AuditRecorder } from '../audit/events.js';
import type { PeerConfig } from '../config.js';
import type { Db } from '../db/client.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { advanceCursor } from '../store/cursors.js';
import { comparePositions, encodeCursor, type FeedPosition } from '../store/feed.js';
import { behindHorizon, endSnapshot, readHorizon, startSnapshot, touchSnapshot, type Snapshot } from '../store/retention.js';
import type { Item } from './feed-page.js';
import { pushHolder, snapshotRows } from './snapshot.js';

export interface SnapshotPushDeps {
  db: Db;
  logger: Logger;
  metrics: Metrics;
  audit?: AuditRecorder;
  batchMax: number;
  /** Bytes the rows of one push body may take (rowBudgetFor). */
  rowBudget: number;
  snapshotTtlMs: number;
  /** Sends one batch the normal way (signed push, refusal breaker, DLQ); returns the rows refused. */
  send(items: Item[]): Promise<number>;
  stillActive(): boolean;
}

export interface SnapshotPushResult {
  /** The snapshot was sent whole and the cursor now stands at its position. */
  done: boolean;
  batches: number;
  rows: number;
  refused: number;
}

/**
 * Brings a peer whose cursor is behind the retained horizon up to date: the snapshot
 * (live memories and tombstones, by id) in normal signed push batches, which any peer
 * accepts, ai-memory ones included; then its cursor is set to the snapshot's position, so
 * the feed after it (kept while the snapshot is live) delivers whatever changed meanwhile.
 * Progress is kept in the snapshot row: a run that ends (budget, failure) resumes there.
 * Rows the peer refuses are dead-lettered like any pushed row.
 */
export async function pushSnapshot(deps: SnapshotPushDeps, peer: PeerConfig, cursor: FeedPosition, budgetMs: number): Promise<SnapshotPushResult> {
  const started = Date.now();
  const holder = pushHolder(peer.id);
  const out: SnapshotPushResult = { done: false, batches: 0, rows: 0, refused: 0 };
  let snap: Snapshot | null = await touchSnapshot(deps.db, holder, deps.snapshotTtlMs);
  // A snapshot left from an earlier bootstrap that the cursor has passed since is no use.
  if (!snap || comparePositions(snap.position, cursor) <= 0) {
    snap = await startSnapshot(deps.db, holder);
    deps.metrics.snapshotBootstraps.inc({ peer: peer.id, direction: 'push', outcome: 'started' });
    deps.logger.warn({ peer: peer.id, cursor: encodeCursor(cursor), snapshot_cursor: encodeCursor(snap.position) }, "peer's delivery cursor is behind the retained horizon: pushing it a snapshot, then its cursor resumes at the snapshot position");
  }
  for (;;) {
    if (!deps.stillActive()) return out;
    const rows = await snapshotRows(deps.db, snap.afterId, deps.batchMax, deps.rowBudget);
    if (rows.items.length > 0) {
      const refused = await deps.send(rows.items);
      out.batches++;
      out.rows += rows.items.length - refused;
      out.refused += refused;
      deps.metrics.snapshotPages.inc({ peer: peer.id, direction: 'pushed' });
      deps.metrics.snapshotRows.inc({ peer: peer.id, direction: 'pushed' }, rows.items.length - refused);
    }
    if (rows.lastId !== undefined) {
      const touched = await touchSnapshot(deps.db, holder, deps.snapshotTtlMs, snap.snapshotId, { afterId: rows.lastId, rows: rows.items.length });
      if (!touched) {
        // Idle past its TTL (a very slow peer): the feed after it may be gone. Start again.
        deps.metrics.snapshotBootstraps.inc({ peer: peer.id, direction: 'push', outcome: 'restarted' });
        deps.logger.warn({ peer: peer.id }, 'snapshot push outlived FEED_SNAPSHOT_TTL_MS: starting it again');
        return out;
      }
      snap = touched;
    }
    if (!rows.more) break;
    if (Date.now() - started > budgetMs) return out;
  }
  // Retention kept the feed after the snapshot's position while it was live; if it did
  // not (the snapshot lapsed between runs), the copy cannot be joined to the feed: again.
  if (behindHorizon(snap.position, await readHorizon(deps.db))) {
    await endSnapshot(deps.db, holder, snap.snapshotId);
    deps.metrics.snapshotBootstraps.inc({ peer: peer.id, direction: 'push', outcome: 'restarted' });
    deps.logger.warn({ peer: peer.id }, 'the feed was pruned past the snapshot position before the snapshot push ended: starting it again');
    return out;
  }
  await advanceCursor(deps.db, peer.id, snap.position);
  await endSnapshot(deps.db, holder, snap.snapshotId);
  out.done = true;
  deps.metrics.snapshotBootstraps.inc({ peer: peer.id, direction: 'push', outcome: 'completed' });
  deps.logger.info({ peer: peer.id, rows: snap.rows, cursor: encodeCursor(snap.position) }, 'snapshot push complete: the peer follows the feed from the snapshot position');
  deps.audit?.record({ kind: 'feed.bootstrap', actor: 'system', subject: peer.id, details: { peer: peer.id, direction: 'push', snapshot_cursor: encodeCursor(snap.position), previous_cursor: encodeCursor(cursor), rows: snap.rows } });
  return out;
}
