import type { Logger } from '../src/logger.js';
import { QUEUE_NAMES, type QueueName } from '../src/queue-names.js';
import { peersBehind } from '../src/store/cursors.js';
import { peersWithoutScheduler, pruneCatchupSchedulers, removeCatchupSchedulers, syncCatchupSchedulers } from '../queues/catchup.js';
import { createRedis } from '../queues/connection.js';
import { peersWithoutRepairScheduler, pruneRepairSchedulers, removeRepairSchedulers, syncRepairSchedulers } from '../queues/repair.js';
import { flavourTraits } from '../src/federation/peers.js';
import { hasDlqScheduler, scheduleDlqReplay } from '../queues/dlq.js';
import { enqueuePush } from '../queues/push.js';
import { hasExpirySchedulers, scheduleExpiry } from '../queues/expiry.js';
import { hasRetentionScheduler, scheduleRetention } from '../queues/retention.js';
import { onPeerRecovered } from '../queues/recovery.js';
import type { PeerChange } from '../src/federation/peer-directory.js';
import { QUEUE_DEFINITIONS } from '../queues/registry.js';
import type { QueueDefinition } from '../queues/definition.js';
import { defineWorker, type Processor } from '../queues/worker.js';
import { SupervisedWorker } from '../queues/worker-watchdog.js';
import type { WorkerContext } from './context.js';
import { createProcessors } from './processors.js';
import { startAuditMaintenance } from './audit.worker.js';

export interface RunningWorkers {
  queues: QueueName[];
  close(graceMs: number): Promise<void>;
}

const SCHEDULER_CHECK_MS = 5_000;

/** Creates the job schedulers and queue settings the selected queues need (all, or only missing ones). */
async function ensureSchedulers(ctx: WorkerContext, selected: QueueName[], initial: boolean): Promise<void> {
  if (selected.includes('dlq') && (initial || !(await hasDlqScheduler(ctx.queues.dlq)))) {
    await scheduleDlqReplay(ctx.queues.dlq, ctx.config.dlq.replayIntervalMs);
    ctx.logger.info({ everyMs: ctx.config.dlq.replayIntervalMs, restored: !initial }, 'DLQ replay scheduled');
  }
  if (selected.includes('expiry') && (initial || !(await hasExpirySchedulers(ctx.queues.expiry)))) {
    const { sweepIntervalMs, tombstoneGcIntervalMs } = ctx.config.expiry;
    await scheduleExpiry(ctx.queues.expiry, sweepIntervalMs, tombstoneGcIntervalMs);
    ctx.logger.info({ sweepEveryMs: sweepIntervalMs, tombstoneGcEveryMs: tombstoneGcIntervalMs, restored: !initial }, 'expiry sweep and tombstone GC scheduled');
  }
  if (selected.includes('catchup')) {
    const peers = [...ctx.peers.keys()];
    const missing = initial ? peers : await peersWithoutScheduler(ctx.queues.catchup, peers);
    if (initial || missing.length > 0) {
      const { removed } = await syncCatchupSchedulers(ctx.queues.catchup, missing, ctx.config.catchup.intervalMs, initial);
      ctx.logger.info({ everyMs: ctx.config.catchup.intervalMs, peers: missing, removed, restored: !initial }, 'catch-up scheduled');
    }
    // A scheduler left for a peer paused or removed since (a change followed from a stale
    // view, in this or another process) goes too: the schedulers follow the peer list.
    if (!initial) {
      const stale = await pruneCatchupSchedulers(ctx.queues.catchup, peers);
      if (stale.length > 0) ctx.logger.info({ removed: stale }, 'catch-up schedulers of inactive peers removed');
    }
  }
  if (selected.includes('retention') && (initial || !(await hasRetentionScheduler(ctx.queues.retention)))) {
    await scheduleRetention(ctx.queues.retention, ctx.config.retention.intervalMs);
    ctx.logger.info({ everyMs: ctx.config.retention.intervalMs, restored: !initial }, 'change-feed retention scheduled');
  }
  if (selected.includes('repair')) {
    const peers = repairPeers(ctx);
    const missing = initial ? peers : await peersWithoutRepairScheduler(ctx.queues.repair, peers);
    if (initial || missing.length > 0) {
      const { removed } = await syncRepairSchedulers(ctx.queues.repair, missing, ctx.config.repair.intervalMs, initial);
      ctx.logger.info({ everyMs: ctx.config.repair.intervalMs, peers: missing, removed, restored: !initial }, 'repair scheduled');
    }
    if (!initial) {
      const stale = await pruneRepairSchedulers(ctx.queues.repair, peers);
      if (stale.length > 0) ctx.logger.info({ removed: stale }, 'repair schedulers of inactive peers removed');
    }
  }
  for (const name of selected) {
    const wanted = QUEUE_DEFINITIONS[name].globalConcurrency;
    if (wanted !== undefined && (initial || (await ctx.queues[name].getGlobalConcurrency()) !== wanted)) await ctx.queues[name].setGlobalConcurrency(wanted);
  }
}

/** Active peers that answer anti-entropy repair (memfed peers; upstream has no repair endpoint). */
const repairPeers = (ctx: WorkerContext) => [...ctx.peers.values()].filter((p) => flavourTraits(p.flavour).antiEntropy).map((p) => p.id);

/** Starts one BullMQ Worker per selected queue (through the queue factory). */
export async function startWorkers(ctx: WorkerContext): Promise<RunningWorkers> {
  const processors = createProcessors(ctx);
  const selected = QUEUE_NAMES.filter((q) => ctx.config.workerQueues.includes(q));
  const supervised: SupervisedWorker[] = [];
  for (const name of selected) {
    // The typed maps pair each definition with its processor; the loop sees their union.
    const def = QUEUE_DEFINITIONS[name] as QueueDefinition<QueueName, unknown>;
    const concurrency = def.concurrency(ctx.config);
    const create = (processor: Processor<unknown>) => {
      const connection = createRedis(ctx.config.redis, 'worker', `worker-${name}`);
      return { connection, worker: defineWorker(def, processor, { connection, prefix: ctx.config.queuePrefix, lockMs: ctx.config.jobLockMs, logger: ctx.logger, metrics: ctx.metrics, concurrency }) };
    };
    const base = { queueName: name, queue: ctx.queues[name], concurrency, create, processor: processors[name] as Processor<unknown>, logger: ctx.logger, metrics: ctx.metrics };
    supervised.push(new SupervisedWorker(def.globalConcurrency === undefined ? base : { ...base, globalConcurrency: def.globalConcurrency }));
    ctx.logger.info({ queue: name, concurrency }, 'worker started');
  }
  const reconciler = selected.includes('push') ? startReconciler(ctx) : null;
  try {
    await ensureSchedulers(ctx, selected, true);
  } catch (err) {
    // The caller never gets a handle to close: stop what was started before failing the
    // start, or its workers would go on taking jobs on a pool the caller is about to close.
    reconciler?.stop();
    for (const s of supervised) s.stop();
    await Promise.allSettled(supervised.map((s) => s.worker.close(true)));
    await Promise.allSettled(supervised.map((s) => s.connection.quit()));
    throw err;
  }
  // A Redis restarted without persistence forgets schedulers and queue settings. Check
  // every few seconds and put back only what is missing (upserting an existing scheduler
  // would reset its next run). Postgres, which holds the real state, lost nothing.
  // Scheduler changes of this process run one at a time, in order: a pause followed at
  // once by a resume must not have its removal land after the re-creation.
  let serial: Promise<void> = Promise.resolve();
  const inTurn = (step: () => Promise<void>) => (serial = serial.then(step, step));
  let checking = false;
  const schedulerTimer = setInterval(() => {
    if (checking) return;
    checking = true;
    void inTurn(() =>
      ensureSchedulers(ctx, selected, false)
        .catch((err) => ctx.logger.debug({ err }, 'scheduler check failed; retrying'))
        .finally(() => (checking = false)),
    );
  }, SCHEDULER_CHECK_MS);
  const auditMaintenance = selected.includes('audit') ? startAuditMaintenance(ctx) : null;
  const unfollow = ctx.peerDirectory?.onChange((change) => void inTurn(() => followPeerChange(ctx, selected, change))) ?? (() => undefined);
  return {
    queues: selected,
    async close(graceMs: number) {
      unfollow();
      reconciler?.stop();
      auditMaintenance?.stop();
      clearInterval(schedulerTimer);
      for (const s of supervised) s.stop();
      const workers = supervised.map((s) => s.worker);
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
      await Promise.allSettled(supervised.map((s) => s.connection.quit()));
    },
  };
}

/**
 * Durable intent lives in Postgres; this loop turns it back into jobs: every interval,
 * each peer whose cursor is behind the feed head gets a (deduplicated) push job. This is
 * what makes losing every Redis key lose nothing.
 */
export function startReconciler(ctx: WorkerContext, log: Logger = ctx.logger): { stop(): void } {
  let running = false;
  const tick = async () => {
    // The active peers now: a peer added at runtime is reconciled, a paused one is not.
    const peerIds = [...ctx.peers.keys()];
    if (running || peerIds.length === 0) return;
    running = true;
    try {
      for (const peerId of await peersBehind(ctx.database.db, peerIds)) await enqueuePush(ctx.queues.push, peerId, 'reconcile');
    } catch (err) {
      log.warn({ err }, 'reconcile tick failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), ctx.config.push.reconcileIntervalMs);
  void tick();
  return { stop: () => clearInterval(timer) };
}

/**
 * The peer list changed at runtime (`memfed peers`): catch-up schedulers follow it, and a
 * peer added or resumed is delivered to, replayed to and pulled from at once (as a peer
 * that came back). Every worker process does this; the jobs are deduplicated per peer.
 * What fails here is done by the periodic checks (scheduler check, reconciler, DLQ tick).
 */
async function followPeerChange(ctx: WorkerContext, selected: QueueName[], change: PeerChange): Promise<void> {
  try {
    if (selected.includes('catchup')) {
      if (change.deactivated.length > 0) await removeCatchupSchedulers(ctx.queues.catchup, change.deactivated);
      if (change.activated.length > 0) await syncCatchupSchedulers(ctx.queues.catchup, change.activated.map((p) => p.id), ctx.config.catchup.intervalMs, false);
    }
    if (selected.includes('repair')) {
      if (change.deactivated.length > 0) await removeRepairSchedulers(ctx.queues.repair, change.deactivated);
      const added = change.activated.filter((p) => flavourTraits(p.flavour).antiEntropy).map((p) => p.id);
      if (added.length > 0) await syncRepairSchedulers(ctx.queues.repair, added, ctx.config.repair.intervalMs, false);
    }
    const recovery = { db: ctx.database.db, queues: ctx.queues, logger: ctx.logger, metrics: ctx.metrics };
    for (const p of change.activated) await onPeerRecovered(recovery, p.id, 'resumed');
  } catch (err) {
    ctx.logger.warn({ err }, 'could not follow a peer change at once; the periodic checks will');
  }
}
