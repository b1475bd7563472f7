import type { Db } from './db/client.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { formatTimestamp, nowMicros } from './memory/time.js';
import { collectTombstonesBatch, slowestCursor, sweepExpiredBatch } from './store/expiry.js';
import { peerStates } from './store/peers.js';

export interface ExpiryDeps {
  db: Db;
  metrics: Metrics;
  logger: Logger;
  /** Rows per batch (one short transaction each). */
  batchMax: number;
  /** A run stops taking batches after this long; the next tick (or a follow-up) goes on. */
  runBudgetMs: number;
}

export interface ExpiryRun {
  /** Rows deleted by this run. */
  deleted: number;
  batches: number;
  /** The budget ended the run with a full last batch: more may be due now. */
  more: boolean;
}

async function inBatches(deps: ExpiryDeps, batch: () => Promise<string[]>): Promise<ExpiryRun> {
  const started = Date.now();
  const run: ExpiryRun = { deleted: 0, batches: 0, more: false };
  for (;;) {
    const ids = await batch();
    run.batches++;
    run.deleted += ids.length;
    if (ids.length < deps.batchMax) return run;
    if (Date.now() - started >= deps.runBudgetMs) return { ...run, more: true };
  }
}

/** One expiry sweep: expired memories deleted locally, in batches (src/store/expiry.ts). */
export async function runExpirySweep(deps: ExpiryDeps): Promise<ExpiryRun> {
  const run = await inBatches(deps, async () => {
    const ids = await sweepExpiredBatch(deps.db, deps.batchMax);
    deps.metrics.expiredSwept.inc(ids.length);
    return ids;
  });
  if (run.deleted > 0) deps.logger.info({ deleted: run.deleted, batches: run.batches, more: run.more }, 'expiry sweep: expired memories deleted locally (not replicated)');
  return run;
}

/**
 * One tombstone GC run: tombstones older than TOMBSTONE_GRACE whose deletion every
 * configured peer (active or paused: a paused peer resumes and must still be sent it)
 * has been sent. A removed peer is no longer waited for.
 */
export async function runTombstoneGc(deps: ExpiryDeps & { tombstoneGraceMs: number }): Promise<ExpiryRun & { horizon: string }> {
  const states = await peerStates(deps.db);
  const slowest = await slowestCursor(deps.db, [...states.active, ...states.paused]);
  const horizon = formatTimestamp(nowMicros() - deps.tombstoneGraceMs * 1000);
  const run = await inBatches(deps, async () => {
    const ids = await collectTombstonesBatch(deps.db, horizon, slowest, deps.batchMax);
    deps.metrics.tombstonesCollected.inc(ids.length);
    return ids;
  });
  if (run.deleted > 0) deps.logger.info({ collected: run.deleted, batches: run.batches, horizon, more: run.more }, 'tombstone GC: tombstones past the grace period and delivered to every peer collected');
  return { ...run, horizon };
}
