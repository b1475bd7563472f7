import type { JobsOptions } from 'bullmq';
import type { PendingAuditEvent } from '../src/store/audit.js';
import type { FeedPosition } from '../src/store/feed.js';

/**
 * The one queue catalogue: queue names (Redis keys: never rename), each job's payload
 * type, and default job options. Payloads carry ids, never records.
 */
export interface JobPayloads {
  /**
   * Deliver everything after the peer's cursor. One waiting job per peer at most.
   * `until`: the feed position of the commit that asked for it; a run that ends short of
   * it (the commit is not yet below the feed horizon) looks again shortly.
   */
  push: { peerId: string; reason: 'commit' | 'reconcile' | 'recovered'; until?: FeedPosition; horizonWaits?: number };
  /** Replay pending DLQ rows (all peers, or one peer that just came back). */
  dlq: { reason: 'tick' | 'drain' | 'recovered' | 'operator'; peerId?: string };
  /** Pull what the peer has after our watermark (scheduler per peer, or at once). */
  catchup: { peerId: string; reason: 'tick' | 'recovered' | 'continue' };
  /** Append events to the audit chain (serialized: worker and global concurrency 1). */
  audit: { events: PendingAuditEvent[] };
}

export type QueueName = keyof JobPayloads;

export const QUEUE_NAMES = ['push', 'dlq', 'catchup', 'audit'] as const satisfies readonly QueueName[];

const BASE: JobsOptions = {
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 7 * 86400, count: 5000 },
};

export const JOB_OPTIONS: { [Q in QueueName]: JobsOptions } = {
  push: {
    ...BASE,
    // Transient failures retry with exponential backoff + jitter; the cursor in Postgres
    // is the real state, so an exhausted job loses nothing (the reconciler re-enqueues).
    attempts: 8,
    // 'peer': the worker's backoffStrategy (exponential + jitter, Retry-After honoured).
    backoff: { type: 'peer' },
  },
  dlq: {
    ...BASE,
    // A failed round is simply the next tick's work: rows carry their own attempt counts.
    attempts: 1,
  },
  catchup: {
    ...BASE,
    // A failed pull is retried by the next tick; the watermark makes the retry exact.
    attempts: 1,
  },
  audit: {
    ...BASE,
    // On the last failed attempt the processor moves the events to the audit DLQ table.
    attempts: 5,
    backoff: { type: 'peer' },
  },
};

/** Job scheduler ids (never containing ':'). */
export const SCHEDULERS = { dlqReplay: 'dlq-replay', catchupPrefix: 'catchup-' } as const;
export const catchupSchedulerId = (peerId: string) => `${SCHEDULERS.catchupPrefix}${safeKey(peerId)}`;

/** Job ids and scheduler ids never contain ':' (DESIGN.md); peer ids may. */
export function safeKey(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64url');
}

export const pushDedupId = (peerId: string) => `push-${safeKey(peerId)}`;
export const catchupDedupId = (peerId: string) => `catchup-now-${safeKey(peerId)}`;
export const dlqDedupId = (peerId?: string) => (peerId === undefined ? 'dlq-all' : `dlq-${safeKey(peerId)}`);
