import type { Queue } from 'bullmq';
import { RETENTION, defineQueue, jobName, safeKey } from './definition.js';

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

export const catchupSchedulerId = (peerId: string) => `${SCHEDULER_PREFIX}${safeKey(peerId)}`;
export const catchupDedupId = (peerId: string) => `catchup-now-${safeKey(peerId)}`;

/** A pull now (peer came back, or a run that had more to fetch). */
export async function enqueueCatchup(queue: Queue<CatchupJob>, peerId: string, reason: CatchupJob['reason']): Promise<void> {
  await queue.add(jobName(CATCHUP_PULL, peerId), { peerId, reason }, { deduplication: { id: catchupDedupId(peerId), keepLastIfActive: true } });
}

/**
 * One scheduler per peer (upserted for `peerIds`); with `prune`, schedulers of peers no
 * longer configured are removed.
 */
export async function syncCatchupSchedulers(queue: Queue<CatchupJob>, peerIds: string[], everyMs: number, prune = true): Promise<{ removed: string[] }> {
  for (const peerId of peerIds) {
    await queue.upsertJobScheduler(catchupSchedulerId(peerId), { every: everyMs }, { name: jobName(CATCHUP_PULL, peerId), data: { peerId, reason: 'tick' } });
  }
  return { removed: prune ? await pruneCatchupSchedulers(queue, peerIds) : [] };
}

/** Removes the catch-up schedulers of every peer not in `keepPeerIds`; returns their keys. */
export async function pruneCatchupSchedulers(queue: Queue<CatchupJob>, keepPeerIds: string[]): Promise<string[]> {
  const wanted = new Set(keepPeerIds.map(catchupSchedulerId));
  const removed: string[] = [];
  for (const s of await queue.getJobSchedulers(0, -1)) {
    if (s.key.startsWith(SCHEDULER_PREFIX) && !wanted.has(s.key)) {
      await queue.removeJobScheduler(s.key);
      removed.push(s.key);
    }
  }
  return removed;
}

/** The peers (of `peerIds`) whose scheduler is missing (a Redis restarted empty). */
export async function peersWithoutScheduler(queue: Queue<CatchupJob>, peerIds: string[]): Promise<string[]> {
  const found = await Promise.all(peerIds.map(async (p) => ((await queue.getJobScheduler(catchupSchedulerId(p))) ? null : p)));
  return found.filter((p): p is string => p !== null);
}

/** Stops the periodic pulls from peers paused or removed at runtime. */
export async function removeCatchupSchedulers(queue: Queue<CatchupJob>, peerIds: string[]): Promise<void> {
  for (const peerId of peerIds) await queue.removeJobScheduler(catchupSchedulerId(peerId));
}
