import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../src/logger.js';
import { peersBehind } from '../src/store/cursors.js';
import { QUEUE_NAMES, SCHEDULERS, catchupSchedulerId, type QueueName } from '../queues/catalogue.js';
import { createRedis } from '../queues/connection.js';
import { enqueuePush, scheduleDlqReplay, syncCatchupSchedulers } from '../queues/producers.js';
import type { WorkerContext } from './context.js';
import { concurrencyFor, createProcessors } from './processors.js';
import { startAuditMaintenance } from './audit.worker.js';
import { backoffStrategy } from './push.worker.js';

export interface RunningWorkers {
  queues: QueueName[];
  close(graceMs: number): Promise<void>;
}

const SCHEDULER_CHECK_MS = 5_000;

/** Creates the job schedulers and queue settings the selected queues need (all, or only missing ones). */
async function ensureSchedulers(ctx: WorkerContext, selected: QueueName[], initial: boolean): Promise<void> {
  if (selected.includes('dlq') && (initial || !(await ctx.queues.dlq.getJobScheduler(SCHEDULERS.dlqReplay)))) {
    await scheduleDlqReplay(ctx.queues, ctx.config.dlq.replayIntervalMs);
    ctx.logger.info({ everyMs: ctx.config.dlq.replayIntervalMs, restored: !initial }, 'DLQ replay scheduled');
  }
  if (selected.includes('catchup')) {
    const peers = [...ctx.peers.keys()];
    const missing = initial ? peers : (await Promise.all(peers.map(async (p) => ((await ctx.queues.catchup.getJobScheduler(catchupSchedulerId(p))) ? null : p)))).filter((p): p is string => p !== null);
    if (initial || missing.length > 0) {
      const { removed } = await syncCatchupSchedulers(ctx.queues, initial ? peers : missing, ctx.config.catchup.intervalMs, initial);
      ctx.logger.info({ everyMs: ctx.config.catchup.intervalMs, peers: initial ? peers : missing, removed, restored: !initial }, 'catch-up scheduled');
    }
  }
  if (selected.includes('audit') && (initial || (await ctx.queues.audit.getGlobalConcurrency()) !== 1)) await ctx.queues.audit.setGlobalConcurrency(1);
}

/** Starts one BullMQ Worker per selected queue with its configured concurrency. */
export async function startWorkers(ctx: WorkerContext): Promise<RunningWorkers> {
  const processors = createProcessors(ctx);
  const selected = QUEUE_NAMES.filter((q) => ctx.config.workerQueues.includes(q));
  const workers: Worker[] = [];
  const connections: Redis[] = [];
  for (const name of selected) {
    const connection = createRedis(ctx.config.redisUrl, 'worker', `worker-${name}`);
    connections.push(connection);
    const concurrency = concurrencyFor(ctx, name);
    const worker = new Worker(name, processors[name] as (job: unknown, token?: string) => Promise<unknown>, {
      connection,
      prefix: ctx.config.queuePrefix,
      concurrency,
      maxStalledCount: 3,
      lockDuration: ctx.config.jobLockMs,
      stalledInterval: ctx.config.jobLockMs,
      settings: { backoffStrategy },
    });
    worker.on('error', (err) => ctx.logger.warn({ queue: name, err: err.message }, 'worker connection error'));
    worker.on('failed', (job, err) => ctx.logger.debug({ queue: name, jobId: job?.id, attempt: job?.attemptsMade, err: err.message }, 'job attempt failed'));
    workers.push(worker);
    ctx.logger.info({ queue: name, concurrency }, 'worker started');
  }
  const reconciler = selected.includes('push') ? startReconciler(ctx) : null;
  await ensureSchedulers(ctx, selected, true);
  // A Redis restarted without persistence forgets schedulers and queue settings. Check
  // every few seconds and put back only what is missing (upserting an existing scheduler
  // would reset its next run). Postgres, which holds the real state, lost nothing.
  let checking = false;
  const schedulerTimer = setInterval(() => {
    if (checking) return;
    checking = true;
    ensureSchedulers(ctx, selected, false)
      .catch((err) => ctx.logger.debug({ err: (err as Error).message }, 'scheduler check failed; retrying'))
      .finally(() => (checking = false));
  }, SCHEDULER_CHECK_MS);
  // Appends are serialized across every worker process (global concurrency 1, set above).
  const auditMaintenance = selected.includes('audit') ? startAuditMaintenance(ctx) : null;
  return {
    queues: selected,
    async close(graceMs: number) {
      reconciler?.stop();
      auditMaintenance?.stop();
      clearInterval(schedulerTimer);
      // Stop taking jobs, give active ones the grace period, then force-close (their
      // locks lapse and another worker picks them up: nothing is lost, at most re-sent).
      const graceful = Promise.all(workers.map((w) => w.close()));
      const timedOut = await Promise.race([graceful.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), graceMs).unref())]);
      if (timedOut) {
        ctx.logger.warn({ graceMs }, 'grace period over; force-closing workers');
        // End the peer requests the active jobs wait on: the jobs fail as transient and
        // are retried (by any worker) instead of holding this process until their timeout.
        ctx.client.abortAll();
        await Promise.race([graceful, new Promise((r) => setTimeout(r, 1000).unref())]);
        await Promise.all(workers.map((w) => w.close(true)));
      }
      await Promise.allSettled(connections.map((c) => c.quit()));
    },
  };
}

/**
 * Durable intent lives in Postgres; this loop turns it back into jobs: every interval,
 * each peer whose cursor is behind the feed head gets a (deduplicated) push job. This is
 * what makes losing every Redis key lose nothing.
 */
export function startReconciler(ctx: WorkerContext, log: Logger = ctx.logger): { stop(): void } {
  const peerIds = [...ctx.peers.keys()];
  if (peerIds.length === 0) return { stop() {} };
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      for (const peerId of await peersBehind(ctx.database.db, peerIds)) await enqueuePush(ctx.queues, peerId, 'reconcile');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'reconcile tick failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), ctx.config.push.reconcileIntervalMs);
  void tick();
  return { stop: () => clearInterval(timer) };
}
