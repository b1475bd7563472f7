import type { Queue, Worker } from 'bullmq';
import type { RedisClient } from './connection.js';
import type { Logger } from '../src/logger.js';
import type { Metrics } from '../src/metrics.js';
import type { QueueName } from '../src/queue-names.js';
import { nextWaitingJob } from './definition.js';
import type { Processor } from './worker.js';

/** How often the watchdog looks, and how long a job may wait on an idle worker. */
export interface WatchdogTiming {
  checkMs: number;
  stallMs: number;
}

export const WATCHDOG_TIMING: WatchdogTiming = { checkMs: 5_000, stallMs: 20_000 };

/** What this process's worker is doing: jobs running now, and when it last started one. */
export class WorkerActivity {
  inFlight = 0;
  lastStartAt = Date.now();

  track<P>(processor: Processor<P>): Processor<P> {
    return async (job, token, signal) => {
      this.inFlight++;
      this.lastStartAt = Date.now();
      try {
        return await processor(job, token, signal);
      } finally {
        this.inFlight--;
      }
    };
  }
}

export interface WorkerOnConnection {
  worker: Worker;
  connection: RedisClient;
}

export interface SupervisedWorkerOptions {
  queueName: QueueName;
  /** The queue as a producer sees it (to read the waiting jobs). */
  queue: Pick<Queue, 'getJobs' | 'getActiveCount' | 'isPaused'>;
  concurrency: number;
  /** A queue whose jobs run one at a time across processes: a busy peer process is not a stall. */
  globalConcurrency?: number;
  /** Makes a fresh worker on its own new connection; the processor passed is tracked. */
  create: (processor: Processor<unknown>) => WorkerOnConnection;
  processor: Processor<unknown>;
  logger: Logger;
  metrics: Metrics;
  timing?: WatchdogTiming;
}

/**
 * A worker that is replaced when it stops taking jobs. BullMQ leaves reconnection to
 * ioredis; after a Redis Cluster failover a worker's fetch loop can stay parked on a
 * blocking read that never returns, while its jobs wait (seen in the cluster failover
 * test). The watchdog notices the same job being the next one due for `stallMs`
 * while this worker had a free slot and started nothing, and swaps in a fresh worker on
 * a fresh connection. The old one is force-closed: a job it still runs gets its abort
 * signal (a push run stops before its next batch) and, its lock lost, is re-run, which
 * every processor tolerates (cursors only move forward).
 */
export class SupervisedWorker {
  private current: WorkerOnConnection;
  private activity = new WorkerActivity();
  private readonly tracked: Processor<unknown>;
  private timer: NodeJS.Timeout;
  private watched: { jobId: string; since: number } | null = null;
  private replacing = false;
  private closed = false;
  private readonly timing: WatchdogTiming;

  constructor(private readonly opts: SupervisedWorkerOptions) {
    this.timing = opts.timing ?? WATCHDOG_TIMING;
    this.tracked = this.activity.track(opts.processor);
    this.current = opts.create(this.tracked);
    this.timer = setInterval(() => void this.check().catch((err) => opts.logger.debug({ err, queue: opts.queueName }, 'worker watchdog check failed')), this.timing.checkMs);
    this.timer.unref();
  }

  get worker(): Worker {
    return this.current.worker;
  }

  get connection(): RedisClient {
    return this.current.connection;
  }

  /** One look; public for tests. Returns whether the worker was replaced. */
  async check(now = Date.now()): Promise<boolean> {
    if (this.closed || this.replacing) return false;
    const jobId = (await nextWaitingJob(this.opts.queue))?.id;
    if (!jobId) {
      this.watched = null;
      return false;
    }
    if (this.watched?.jobId !== jobId) {
      this.watched = { jobId, since: now };
      return false;
    }
    const idleSlot = this.activity.inFlight < this.opts.concurrency;
    const startedNothing = this.activity.lastStartAt < this.watched.since;
    if (!idleSlot || !startedNothing || now - this.watched.since < this.timing.stallMs) return false;
    // A queue paused by an operator (Bull Board) holds its jobs on purpose.
    if (await this.opts.queue.isPaused()) return false;
    if (this.opts.globalConcurrency !== undefined && (await this.opts.queue.getActiveCount()) >= this.opts.globalConcurrency) return false;
    await this.replace(now - this.watched.since, jobId);
    return true;
  }

  private async replace(waitedMs: number, jobId: string): Promise<void> {
    this.replacing = true;
    try {
      this.opts.logger.warn({ queue: this.opts.queueName, jobId, waitedMs }, 'worker stopped taking jobs while one waited; replacing it with a fresh worker and connection');
      this.opts.metrics.workerReplacements.inc({ queue: this.opts.queueName });
      const old = this.current;
      // Its runs lose their lock with it: signalled, a push run stops before its next batch
      // instead of sending beside the re-run of the same job.
      old.worker.cancelAllJobs('worker replaced by the watchdog');
      this.current = this.opts.create(this.tracked);
      this.watched = null;
      // Not awaited for long: a parked worker may never finish closing.
      await Promise.race([old.worker.close(true), new Promise((r) => setTimeout(r, 2_000).unref())]).catch(() => undefined);
      old.connection.disconnect();
    } finally {
      this.replacing = false;
    }
  }

  /** Stops watching; the caller closes the current worker (gracefully or not). */
  stop(): void {
    this.closed = true;
    clearInterval(this.timer);
  }
}
