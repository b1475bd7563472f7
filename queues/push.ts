import type { Queue } from 'bullmq';
import type { FeedPosition } from '../src/store/feed.js';
import { RETENTION, defineQueue, jobName, promoteDelayed, safeKey } from './definition.js';

/**
 * Deliver everything after the peer's cursor. One waiting job per peer at most.
 * `until`: the feed position of the commit that asked for it; a run that ends short of
 * it (the commit is not yet below the feed horizon) looks again shortly.
 */
export interface PushJob {
  peerId: string;
  reason: 'commit' | 'reconcile' | 'recovered';
  until?: FeedPosition;
  horizonWaits?: number;
}

export const PUSH_DELIVER = 'push.deliver';

export const pushQueue = defineQueue<PushJob>()({
  name: 'push',
  jobOptions: {
    ...RETENTION,
    // Transient failures retry with backoff; the cursor in Postgres is the real state, so
    // an exhausted job loses nothing (the reconciler re-enqueues).
    attempts: 8,
    // 'peer': the worker factory's backoffStrategy (exponential + jitter, Retry-After honoured).
    backoff: { type: 'peer' },
  },
  concurrency: (config) => config.concurrency.push,
  afterFinalFailure: 'the reconciler re-enqueues the peer; its cursor has not moved',
});

export const pushDedupId = (peerId: string) => `push-${safeKey(peerId)}`;

/**
 * One push job per peer: at most one waiting and one active (keepLastIfActive), so a
 * change committed while a push is in flight still gets a run after it.
 */
export async function enqueuePush(queue: Queue<PushJob>, peerId: string, reason: PushJob['reason'], until?: FeedPosition): Promise<void> {
  // A peer that is back must not wait out the backoff of a job that failed while it was down.
  if (reason === 'recovered') await promoteDelayed(queue, pushDedupId(peerId));
  await queue.add(jobName(PUSH_DELIVER, peerId), { peerId, reason, ...(until ? { until } : {}) }, { deduplication: { id: pushDedupId(peerId), keepLastIfActive: true } });
}
