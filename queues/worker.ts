import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { PeerRequestError } from '../src/federation/client.js';
import type { Logger } from '../src/logger.js';
import type { Metrics } from '../src/metrics.js';
import type { QueueName } from '../src/queue-names.js';
import type { QueueDefinition } from './definition.js';

export type Processor<P> = (job: Job<P>, token?: string) => Promise<unknown>;

export interface WorkerSettings {
  connection: Redis;
  prefix: string;
  /** BullMQ lock duration; a dead worker's jobs are re-run after about twice this. */
  lockMs: number;
  logger: Logger;
  metrics: Metrics;
  /** Jobs this process runs at once (the definition's concurrency from config). */
  concurrency: number;
}

/**
 * Backoff for every memfed queue: a peer's Retry-After when it sent one, else
 * exponential from 500 ms capped at 60 s, with full jitter on the upper half.
 */
export function backoffStrategy(attemptsMade: number, _type?: string, err?: Error): number {
  if (err instanceof PeerRequestError && err.retryAfterMs !== undefined) return err.retryAfterMs;
  const base = Math.min(500 * 2 ** Math.max(attemptsMade - 1, 0), 60_000);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/** In a `failed` event (attemptsMade already counts the attempt): no retry follows. */
export function wasFinalAttempt(job: Job, err: Error): boolean {
  return err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
}

/**
 * The one way memfed starts a BullMQ worker: the definition's concurrency, lock and
 * stall settings, the shared backoff, per-queue outcome counters, and final failures
 * logged once with the error object (stack included); earlier attempts log at debug.
 */
export function defineWorker<Q extends QueueName, P>(def: QueueDefinition<Q, P>, processor: Processor<P>, s: WorkerSettings): Worker<P> {
  const worker = new Worker<P>(def.name, processor, {
    connection: s.connection,
    prefix: s.prefix,
    concurrency: s.concurrency,
    maxStalledCount: 3,
    lockDuration: s.lockMs,
    stalledInterval: s.lockMs,
    settings: { backoffStrategy },
  });
  const count = (outcome: 'completed' | 'retried' | 'failed') => s.metrics.jobOutcomes.inc({ queue: def.name, outcome });
  worker.on('completed', () => count('completed'));
  worker.on('failed', (job, err) => {
    const at = { queue: def.name, job: job?.name, jobId: job?.id, attempt: job?.attemptsMade };
    if (job && !wasFinalAttempt(job, err)) {
      count('retried');
      s.logger.debug({ ...at, err }, 'job attempt failed; will retry');
      return;
    }
    count('failed');
    s.logger.error({ ...at, err, next: def.afterFinalFailure }, 'job failed after its last attempt');
  });
  worker.on('error', (err) => s.logger.warn({ queue: def.name, err }, 'worker connection error'));
  return worker;
}
