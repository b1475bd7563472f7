import type { Queue } from 'bullmq';
import { RETENTION, defineQueue, jobName, safeKey } from './definition.js';

/** Replay pending push-DLQ rows (all peers, or one peer that just came back). */
export interface DlqJob {
  reason: 'tick' | 'drain' | 'recovered' | 'operator';
  peerId?: string;
}

export const DLQ_REPLAY = 'dlq.replay';
/** The periodic replay tick's scheduler id. */
export const DLQ_SCHEDULER_ID = 'dlq-replay';

export const dlqQueue = defineQueue<DlqJob>()({
  name: 'dlq',
  // A failed round is simply the next tick's work: rows carry their own attempt counts.
  jobOptions: { ...RETENTION, attempts: 1 },
  concurrency: (config) => config.concurrency.dlq,
  afterFinalFailure: 'the rows stay in the DLQ for the next replay tick',
});

export const dlqDedupId = (peerId?: string) => (peerId === undefined ? 'dlq-all' : `dlq-${safeKey(peerId)}`);

/** A replay run now (operator, recovered peer, or a drain continuing a big backlog). */
export async function enqueueDlqReplay(queue: Queue<DlqJob>, reason: DlqJob['reason'], peerId?: string): Promise<void> {
  await queue.add(jobName(DLQ_REPLAY, peerId), { reason, ...(peerId !== undefined ? { peerId } : {}) }, { deduplication: { id: dlqDedupId(peerId), keepLastIfActive: true } });
}

/** The periodic replay tick (idempotent: upserting keeps one scheduler). */
export async function scheduleDlqReplay(queue: Queue<DlqJob>, everyMs: number): Promise<void> {
  await queue.upsertJobScheduler(DLQ_SCHEDULER_ID, { every: everyMs }, { name: DLQ_REPLAY, data: { reason: 'tick' } });
}

export async function hasDlqScheduler(queue: Queue<DlqJob>): Promise<boolean> {
  return Boolean(await queue.getJobScheduler(DLQ_SCHEDULER_ID));
}
