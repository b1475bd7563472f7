import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { encodeCursor } from '../store/feed.js';
import { dropIdleSnapshots, pruneBatch } from '../store/retention.js';

export interface RetentionDeps {
  db: Db;
  logger: Logger;
  metrics: Metrics;
  settings: Config['retention'];
}

export interface RetentionRun {
  deleted: number;
  batches: number;
  horizon: string;
  idleSnapshotsDropped: number;
  /** Stopped at RETENTION_MAX_BATCHES with more to prune (a follow-up run continues). */
  more: boolean;
}

/**
 * One retention run: prune batches (each its own short transaction) until nothing more
 * may go or the batch limit is reached; drop snapshots idle past their TTL first (they
 * no longer hold the feed). `peerIds`: the configured peers (active and paused).
 */
export async function runRetention(deps: RetentionDeps, peerIds: string[]): Promise<RetentionRun> {
  const s = deps.settings;
  const idle = await dropIdleSnapshots(deps.db, s.snapshotTtlMs);
  if (idle > 0) deps.logger.info({ snapshots: idle }, 'snapshots idle past FEED_SNAPSHOT_TTL_MS dropped (their readers start again)');
  const out: RetentionRun = { deleted: 0, batches: 0, horizon: '', idleSnapshotsDropped: idle, more: false };
  for (;;) {
    const b = await pruneBatch(deps.db, { retentionMs: s.feedRetentionMs, maxLagMs: s.maxLagMs, snapshotTtlMs: s.snapshotTtlMs, batch: s.batch, peerIds });
    out.batches++;
    out.deleted += b.deleted;
    out.horizon = encodeCursor(b.horizon);
    if (b.deleted > 0) deps.metrics.feedPrunedRows.inc(b.deleted);
    if (!b.more) break;
    if (out.batches >= s.maxBatches) {
      out.more = true;
      break;
    }
  }
  if (out.deleted > 0) deps.logger.info({ deleted: out.deleted, batches: out.batches, horizon: out.horizon }, 'change feed pruned');
  return out;
}
