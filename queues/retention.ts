import type { Queue } from 'bullmq';
import { RETENTION, defineQueue } from './definition.js';

/** Prune the change feed (and idle snapshots) as far as the retention rules allow. */
export interface RetentionJob {
  reason: 'tick' | 'continue';
}

export const RETENTION_PRUNE = 'retention.prune';
/** The periodic prune tick's scheduler id. */
export const RETENTION_SCHEDULER_ID = 'retention-prune';

export const retentionQueue = defineQueue<RetentionJob>()({
  name: 'retention',
  // A failed run deleted what its committed batches deleted; the next tick goes on from there.
  jobOptions: { ...RETENTION, attempts: 1 },
  // One pruner at a time across every process (a second one would only wait on the horizon lock).
  concurrency: () => 1,
  globalConcurrency: 1,
  afterFinalFailure: 'the next tick prunes again from the current horizon',
});

/** A run now, when the last one stopped at its batch limit with more to prune. */
export async function enqueueRetention(queue: Queue<RetentionJob>): Promise<void> {
  await queue.add(RETENTION_PRUNE, { reason: 'continue' }, { deduplication: { id: 'retention-continue', keepLastIfActive: true } });
}

/** The periodic tick (idempotent: upserting keeps one scheduler). */
export async function scheduleRetention(queue: Queue<RetentionJob>, everyMs: number): Promise<void> {
  await queue.upsertJobScheduler(RETENTION_SCHEDULER_ID, { every: everyMs }, { name: RETENTION_PRUNE, data: { reason: 'tick' } });
}

export async function hasRetentionScheduler(queue: Queue<RetentionJob>): Promise<boolean> {
  return Boolean(await queue.getJobScheduler(RETENTION_SCHEDULER_ID));
}
