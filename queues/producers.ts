import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { JOB_OPTIONS, QUEUE_NAMES, SCHEDULERS, dlqDedupId, pushDedupId, type JobPayloads, type QueueName } from './catalogue.js';

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
export async function enqueuePush(queues: Queues, peerId: string, reason: JobPayloads['push']['reason']): Promise<void> {
  await queues.push.add('push', { peerId, reason }, { deduplication: { id: pushDedupId(peerId), keepLastIfActive: true } });
}

/** A DLQ replay run now (operator, recovered peer, or a drain continuing a big backlog). */
export async function enqueueDlqReplay(queues: Queues, reason: JobPayloads['dlq']['reason'], peerId?: string): Promise<void> {
  await queues.dlq.add('replay', { reason, ...(peerId !== undefined ? { peerId } : {}) }, { deduplication: { id: dlqDedupId(peerId), keepLastIfActive: true } });
}

/** The periodic replay tick (idempotent: upserting keeps one scheduler). */
export async function scheduleDlqReplay(queues: Queues, everyMs: number): Promise<void> {
  await queues.dlq.upsertJobScheduler(SCHEDULERS.dlqReplay, { every: everyMs }, { name: 'replay', data: { reason: 'tick' } });
}
