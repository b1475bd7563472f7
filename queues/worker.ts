import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { PeerRequestError } from '../src/federation/client.js';
import type { Logger } from '../src/logger.js';
import type { Metrics } from '../src/metrics.js';
import type { QueueName } from '../src/queue-names.js';
import type { RedisClient } from './connection.js';
import { queuePrefixFor, type QueueDefinition } from './definition.js';

/**
 * A job's processor. `signal` aborts when this process may no longer run the job: its lock
 * was lost (another worker may run it now) or the watchdog replaced its worker. A processor
 * that works in steps checks it between steps; BullMQ passes it only to a processor that
 * declares all three parameters.
 */
export type Processor<P> = (job: Job<P>, token?: string, signal?: AbortSignal) => Promise<unknown>;

export interface WorkerSettings {
  connection: RedisClient;
  /** QUEUE_PREFIX; the queue's own prefix is derived from it (queuePrefixFor). */
  prefix: string;
  /** BullMQ lock duration; a dead worker's jobs are re-run after about twice this. */
  lockMs: number;
  logger: Logger;
  metrics: Metrics;
  /** Jobs this process runs at once (the definition's concurrency from config). */
  concurrency: number;
}

// The delay an attempt's log line announced, so BullMQ waits exactly that long (the
// strategy is random): set by planAfterFailure, read by backoffStrategy.
const plannedDelays = new WeakMap<Error, number>();

/**
 * Backoff for every memfed queue: a peer's Retry-After when it sent one, else
 * exponential from 500 ms capped at 60 s, with full jitter on the upper half.
 */
export function backoffStrategy(attemptsMade: number, _type?: string, err?: Error): number {
  const planned = err ? plannedDelays.get(err) : undefined;
  if (planned !== undefined) return planned;
  if (err instanceof PeerRequestError && err.retryAfterMs !== undefined) return err.retryAfterMs;
  const base = Math.min(500 * 2 ** Math.max(attemptsMade - 1, 0), 60_000);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

const isUnrecoverable = (err: Error) => err instanceof UnrecoverableError || err.name === 'UnrecoverableError';
const isDelayed = (err: unknown) => err instanceof DelayedError || (err instanceof Error && err.name === 'DelayedError');

/**
 * An expected, classified failure (a peer's answer, a refused identity): its message says
 * all, so its stack is that one line and Bull Board's stack list holds one line per
 * attempt. Unexpected errors keep their stack.
 */
export function isExpectedFailure(err: Error): boolean {
  return err instanceof PeerRequestError || err instanceof ExpectedUnrecoverable;
}

/** An UnrecoverableError for an expected failure (one line in Bull Board, no stack). */
export class ExpectedUnrecoverable extends UnrecoverableError {
  constructor(message: string) {
    super(message);
    this.name = 'UnrecoverableError';
    this.stack = message;
  }
}

/** Whole seconds from 10 s, else one decimal: `12 s`, `0.5 s`. */
const seconds = (ms: number) => `${ms >= 10_000 ? Math.round(ms / 1000) : (ms / 1000).toFixed(1)} s`;
const clock = (ms: number) => `${new Date(ms).toISOString().slice(11, 19)} UTC`;
/** `12 s (at 10:58:12 UTC)`: how long, and when by the clock (the board's timeline cannot say, docs/operations.md). */
export const inSeconds = (ms: number, now = Date.now()) => `${seconds(ms)} (at ${clock(now + ms)})`;
/** `attempt 3/8`: the attempt running now (attemptsMade counts the finished ones). */
export const attemptOf = (job: Pick<Job, 'attemptsMade' | 'opts'>) => `attempt ${job.attemptsMade + 1}/${job.opts.attempts ?? 1}`;

/** Appends a line to the job's log (Bull Board's Logs tab); a failed write never fails the job. */
export async function writeJobLog(job: Job, line: string, logger: Logger): Promise<void> {
  await job.log(line).catch((err: unknown) => logger.warn({ err, jobId: job.id }, 'could not write the job log'));
}

/** What follows a failed attempt: one more try after `delayMs`, or none (and why). */
export type AttemptPlan = { retry: true; delayMs: number } | { retry: false; unrecoverable: boolean };

/**
 * The same decision BullMQ's moveToFailed takes, made before it so the log can say it;
 * the delay is remembered for `err`, so BullMQ's call to backoffStrategy applies it.
 */
export function planAfterFailure(job: Pick<Job, 'attemptsMade' | 'opts'>, err: Error): AttemptPlan {
  const unrecoverable = isUnrecoverable(err);
  if (unrecoverable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) return { retry: false, unrecoverable };
  const delayMs = backoffStrategy(job.attemptsMade + 1, undefined, err);
  plannedDelays.set(err, delayMs);
  return { retry: true, delayMs };
}

/**
 * The job-log line of a failed attempt: which attempt of how many, the error (its class
 * leads a peer error's message), and what happens next, after the last attempt too.
 * `attempt 3/8 failed: [transient] POST ... HTTP 500 | next try in 12 s (at 10:58:12 UTC)
 * | after attempt 8/8: the reconciler re-enqueues the peer; its cursor has not moved`
 */
export function failedAttemptLine(job: Pick<Job, 'attemptsMade' | 'opts'>, err: Error, plan: AttemptPlan, afterFinal: string | undefined, now = Date.now()): string {
  const total = job.opts.attempts ?? 1;
  const what = isExpectedFailure(err) ? err.message : `[unexpected] ${err.name}: ${err.message} (stack in the Error tab)`;
  const head = `${attemptOf(job)} failed: ${what.replace(/\s+/g, ' ')}`;
  const after = afterFinal ?? 'nothing more is done';
  if (plan.retry) return `${head} | next try in ${inSeconds(plan.delayMs, now)} | after attempt ${total}/${total}: ${after}`;
  return `${head} | ${plan.unrecoverable ? 'not retried (unrecoverable)' : 'that was the last attempt'}: ${after}`;
}

/** The job-log line of a successful attempt. */
export const completedAttemptLine = (job: Pick<Job, 'attemptsMade' | 'opts'>, tookMs: number) => `${attemptOf(job)} completed in ${seconds(tookMs)}`;

/**
 * Wraps a processor so every attempt leaves one line in the job log (Bull Board's Logs
 * tab) before BullMQ moves the job on: the line is there before the job shows as
 * delayed or failed. A log write that fails never fails the job.
 */
export function withAttemptLog<P>(processor: Processor<P>, afterFinal: string | undefined, logger: Logger): Processor<P> {
  const note = (job: Job<P>, line: string) => writeJobLog(job, line, logger);
  return async (job, token, signal) => {
    const started = Date.now();
    let result: unknown;
    try {
      result = await processor(job, token, signal);
    } catch (err) {
      // A delayed job (throttle, horizon wait) burns no attempt; its processor says why.
      if (!(err instanceof Error) || isDelayed(err)) throw err;
      if (isExpectedFailure(err)) err.stack = err.message.replace(/\s+/g, ' ');
      const plan = planAfterFailure(job, err);
      await note(job, failedAttemptLine(job, err, plan, afterFinal));
      throw err;
    }
    await note(job, completedAttemptLine(job, Date.now() - started));
    return result;
  };
}

/** In a `failed` event (attemptsMade already counts the attempt): no retry follows. */
export function wasFinalAttempt(job: Job, err: Error): boolean {
  return err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
}

/**
 * The one way memfed starts a BullMQ worker: the definition's concurrency, lock and
 * stall settings, the shared backoff, a job-log line per attempt, per-queue outcome
 * counters, and final failures logged once with the error object (stack included);
 * earlier attempts log at debug.
 */
export function defineWorker<Q extends QueueName, P>(def: QueueDefinition<Q, P>, processor: Processor<P>, s: WorkerSettings): Worker<P> {
  const worker = new Worker<P>(def.name, withAttemptLog(processor, def.afterFinalFailure, s.logger), {
    connection: s.connection,
    prefix: queuePrefixFor(s.prefix, def.name),
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
  // The lock is someone else's now (this process was too slow to renew it): stop the run at
  // its next step, so the worker that took the job over does not run alongside it for long.
  // BullMQ retries a failed renewal until the run ends: one lost lock is counted once.
  const lost = new Set<string>();
  worker.on('lockRenewalFailed', (jobIds) => {
    for (const jobId of jobIds) {
      if (lost.has(jobId)) continue;
      // Bounded: ids of runs long ended are of no use.
      if (lost.size >= 1000) lost.clear();
      lost.add(jobId);
      s.metrics.jobLocksLost.inc({ queue: def.name });
      worker.cancelJob(jobId, 'job lock lost');
      s.logger.warn({ queue: def.name, jobId }, 'job lock lost (this process could not renew it in time); the run stops at its next step');
    }
  });
  worker.on('stalled', (jobId) => {
    s.metrics.jobsStalled.inc({ queue: def.name });
    s.logger.warn({ queue: def.name, jobId }, 'job stalled (its worker stopped renewing the lock); moved back to wait to run again');
  });
  return worker;
}
