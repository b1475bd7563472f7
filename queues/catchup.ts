import type { Queue } from 'bullmq';
import { RETENTION, defineQueue, jobName, perPeerSchedulers, safeKey } from './definition.js';

/** Pull what the peer has after our watermark (scheduler per peer, or at once). */
export interface CatchupJob {
  peerId: string;
  reason: 'tick' | 'recovered' | 'continue';
}

export const CATCHUP_PULL = 'catchup.pull';
const SCHEDULER_PREFIX = 'catchup-';

export const catchupQueue = defineQueue<CatchupJob>()({
  name: 'catchup',
  // A failed pull is retried by the next tick; the watermark makes the retry exact.
  jobOptions: { ...RETENTION, attempts: 1 },
  concurrency: (config) => config.concurrency.catchup,
  afterFinalFailure: 'the next tick pulls again from the same watermark',
});

const schedulers = perPeerSchedulers<CatchupJob>(SCHEDULER_PREFIX, (peerId) => ({ name: jobName(CATCHUP_PULL, peerId), data: { peerId, reason: 'tick' } }));
export const catchupSchedulerId = schedulers.schedulerId;
export const catchupDedupId = (peerId: string) => `catchup-now-${safeKey(peerId)}`;

/** A pull now (peer came back, or a run that had more to fetch). */
export async function enqueueCatchup(queue: Queue<CatchupJob>, peerId: string, reason: CatchupJob['reason']): Promise<void> {
  await queue.add(jobName(CATCHUP_PULL, peerId), { peerId, reason }, { deduplication: { id: catchupDedupId(peerId), keepLastIfActive: true } });
}

/** One scheduler per peer: upserted, pruned, found missing, removed (perPeerSchedulers). */
export const syncCatchupSchedulers = schedulers.sync;
export const pruneCatchupSchedulers = schedulers.prune;
export const peersWithoutScheduler = schedulers.missing;
export const removeCatchupSchedulers = schedulers.remove;
