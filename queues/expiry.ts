import type { Queue } from 'bullmq';
import { RETENTION, defineQueue } from './definition.js';

/** Tier expiry sweep or tombstone GC (two job schedulers, or a follow-up run at once). */
export interface ExpiryJob {
  task: 'sweep' | 'tombstone-gc';
  reason: 'tick' | 'continue';
}

export const EXPIRY_SWEEP = 'expiry.sweep';
export const TOMBSTONE_GC = 'expiry.tombstone-gc';
export const EXPIRY_SWEEP_SCHEDULER_ID = 'expiry-sweep';
export const TOMBSTONE_GC_SCHEDULER_ID = 'expiry-tombstone-gc';

export const expiryQueue = defineQueue<ExpiryJob>()({
  name: 'expiry',
  // A failed run is the next tick's work: the rows stay until then.
  jobOptions: { ...RETENTION, attempts: 1 },
  concurrency: () => 1,
  // One run of each at a time across processes: batches already skip rows another holds,
  // two sweeps at once would only race for the same oldest rows.
  globalConcurrency: 1,
  afterFinalFailure: 'the next tick runs it again (expired rows stay hidden meanwhile)',
});

const nameOf = (task: ExpiryJob['task']) => (task === 'sweep' ? EXPIRY_SWEEP : TOMBSTONE_GC);

/** The two periodic runs (idempotent: upserting keeps one scheduler each). */
export async function scheduleExpiry(queue: Queue<ExpiryJob>, sweepEveryMs: number, gcEveryMs: number): Promise<void> {
  await queue.upsertJobScheduler(EXPIRY_SWEEP_SCHEDULER_ID, { every: sweepEveryMs }, { name: EXPIRY_SWEEP, data: { task: 'sweep', reason: 'tick' } });
  await queue.upsertJobScheduler(TOMBSTONE_GC_SCHEDULER_ID, { every: gcEveryMs }, { name: TOMBSTONE_GC, data: { task: 'tombstone-gc', reason: 'tick' } });
}

export async function hasExpirySchedulers(queue: Queue<ExpiryJob>): Promise<boolean> {
  const [a, b] = await Promise.all([queue.getJobScheduler(EXPIRY_SWEEP_SCHEDULER_ID), queue.getJobScheduler(TOMBSTONE_GC_SCHEDULER_ID)]);
  return Boolean(a && b);
}

/** A run now, continuing one whose budget ended with rows still due. */
export async function enqueueExpiry(queue: Queue<ExpiryJob>, task: ExpiryJob['task']): Promise<void> {
  await queue.add(nameOf(task), { task, reason: 'continue' }, { deduplication: { id: `expiry-now-${task}`, keepLastIfActive: true } });
}
