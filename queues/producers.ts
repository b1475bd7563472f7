import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { FeedPosition } from '../src/store/feed.js';
import { JOB_OPTIONS, QUEUE_NAMES, SCHEDULERS, catchupDedupId, catchupSchedulerId, dlqDedupId, pushDedupId, type JobPayloads, type QueueName } from './catalogue.js';

export type Queues = { [Q in QueueName]: Queue<JobPayloads[Q]> };

export function createQueues(connection: Redis, prefix: string): Queues {
  const out = {} as Record<QueueName, Queue>;
  for (const name of QUEUE_NAMES) out[name] = new Queue(name, { connection, prefix, defaultJobOptions: JOB_OPTIONS[name] });
  return out as Queues;
}

export async function closeQueues(queues: Queues): Promise<void> {
  await Promise.allSettled(Object.values(queues).map((q) => q.close()));
}

/**
 * One push job per peer: at most one waiting and one active (keepLastIfActive), so a
 * change committed while a push is in flight still gets a run after it.
 */
export async function enqueuePush(queues: Queues, peerId: string, reason: JobPayloads['push']['reason'], until?: FeedPosition): Promise<void> {
  // A peer that is back must not wait out the backoff of a job that failed while it was down.
  if (reason === 'recovered') await promoteDelayed(queues.push, pushDedupId(peerId));
  // The name shows in Bull Board: which peer a (failed) job was for, at a glance.
  await queues.push.add(`push to ${peerId}`, { peerId, reason, ...(until ? { until } : {}) }, { deduplication: { id: pushDedupId(peerId), keepLastIfActive: true } });
}

/** A DLQ replay run now (operator, recovered peer, or a drain continuing a big backlog). */
export async function enqueueDlqReplay(queues: Queues, reason: JobPayloads['dlq']['reason'], peerId?: string): Promise<void> {
  await queues.dlq.add('replay', { reason, ...(peerId !== undefined ? { peerId } : {}) }, { deduplication: { id: dlqDedupId(peerId), keepLastIfActive: true } });
}

/** The periodic replay tick (idempotent: upserting keeps one scheduler). */
export async function scheduleDlqReplay(queues: Queues, everyMs: number): Promise<void> {
  await queues.dlq.upsertJobScheduler(SCHEDULERS.dlqReplay, { every: everyMs }, { name: 'replay', data: { reason: 'tick' } });
}

/** A catch-up pull now (peer came back, or a run that had more to fetch). */
export async function enqueueCatchup(queues: Queues, peerId: string, reason: JobPayloads['catchup']['reason']): Promise<void> {
  await queues.catchup.add(`pull from ${peerId}`, { peerId, reason }, { deduplication: { id: catchupDedupId(peerId), keepLastIfActive: true } });
}

/**
 * One scheduler per configured peer (upserted for `peerIds`); with `prune`, schedulers of
 * peers no longer configured are removed.
 */
export async function syncCatchupSchedulers(queues: Queues, peerIds: string[], everyMs: number, prune = true): Promise<{ removed: string[] }> {
  const wanted = new Set(peerIds.map(catchupSchedulerId));
  for (const peerId of peerIds) {
    await queues.catchup.upsertJobScheduler(catchupSchedulerId(peerId), { every: everyMs }, { name: `pull from ${peerId}`, data: { peerId, reason: 'tick' } });
  }
  const removed: string[] = [];
  if (!prune) return { removed };
  for (const s of await queues.catchup.getJobSchedulers(0, -1)) {
    const id = s.key;
    if (id.startsWith(SCHEDULERS.catchupPrefix) && !wanted.has(id)) {
      await queues.catchup.removeJobScheduler(id);
      removed.push(id);
    }
  }
  return { removed };
}

/** If the job holding a dedup key sits delayed (in backoff), run it now. */
async function promoteDelayed(queue: Queue, dedupId: string): Promise<void> {
  const jobId = await queue.getDeduplicationJobId(dedupId);
  if (!jobId) return;
  const job = await queue.getJob(jobId);
  if (job && (await job.isDelayed())) await job.promote().catch(() => {});
}
