import type { Job } from 'bullmq';
import { appendFromOutbox, checkpointIfAdvanced, drainOutbox, type AppendDeps, type AppendResult } from '../src/audit/append.js';
import type { AuditJob } from '../queues/audit.js';
import type { WorkerContext } from './context.js';

const DRAIN_EVERY_MS = 2000;

function appendDeps(ctx: WorkerContext): AppendDeps {
  if (!ctx.auditSigner) throw new Error('no signing key for the audit chain');
  return { db: ctx.database.db, nodeId: ctx.config.nodeId, signer: ctx.auditSigner, checkpointEvery: ctx.config.audit.checkpointEvery };
}

/**
 * `audit.append`: appends the job's outbox rows (src/audit/append.ts). Serialized three
 * ways: worker concurrency 1, the queue's global concurrency 1, and the advisory lock in
 * the append transaction (which also covers the drainer and other processes).
 */
export function auditProcessor(ctx: WorkerContext) {
  return async (job: Job<AuditJob>): Promise<AppendResult> => {
    // Only outbox ids are taken from the job (the rows are re-read): whatever else a job
    // carries, however it was added, never reaches the chain.
    const ids = Array.isArray(job.data?.outboxIds) ? job.data.outboxIds.filter((id) => Number.isSafeInteger(id)) : [];
    const r = await appendFromOutbox(appendDeps(ctx), ids);
    ctx.metrics.auditAppends.inc(r.appended);
    return r;
  };
}

/**
 * Background duties of a worker serving `audit`: drain pending outbox rows into the
 * chain, and sign a checkpoint when the head moved and the interval passed. Plain
 * timers: they need no Redis.
 */
export function startAuditMaintenance(ctx: WorkerContext): { stop(): void } {
  if (!ctx.auditSigner) return { stop() {} };
  const deps = appendDeps(ctx);
  let draining = false;
  const drain = async () => {
    if (draining) return;
    draining = true;
    try {
      ctx.metrics.auditAppends.inc((await drainOutbox(deps)).appended);
    } catch (err) {
      ctx.logger.warn({ err }, 'audit outbox drain failed; retrying');
    } finally {
      draining = false;
    }
  };
  const checkpoint = () => checkpointIfAdvanced(deps).catch((err) => ctx.logger.warn({ err }, 'audit checkpoint failed'));
  const drainTimer = setInterval(() => void drain(), DRAIN_EVERY_MS);
  const cpTimer = setInterval(() => void checkpoint(), ctx.config.audit.checkpointIntervalMs);
  void drain();
  return {
    stop() {
      clearInterval(drainTimer);
      clearInterval(cpTimer);
    },
  };
}
