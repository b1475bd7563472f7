import type { Job } from 'bullmq';
import { appendAuditEvents, checkpointIfAdvanced, insertAuditDlq, markAuditDlqAppended, markAuditDlqFailed, markAuditEventsAppended, pendingAuditDlq, type AppendResult } from '../src/store/audit.js';
import type { JobPayloads } from '../queues/catalogue.js';
import type { WorkerContext } from './context.js';

/**
 * Audit appends. Serialized three ways: worker concurrency 1, the queue's global
 * concurrency 1, and the advisory lock inside the append transaction (which also covers
 * the DLQ drainer and any other process). Event ids make a re-run of a stalled job a no-op.
 */
export function auditProcessor(ctx: WorkerContext) {
  return async (job: Job<JobPayloads['audit']>): Promise<AppendResult> => {
    const signer = ctx.auditSigner;
    if (!signer) throw new Error('no signing key for the audit chain');
    try {
      const r = await appendAuditEvents(ctx.database.db, ctx.config.nodeId, signer, job.data.events, { checkpointEvery: ctx.config.audit.checkpointEvery });
      ctx.metrics.auditAppends.inc(r.appended);
      await markAuditEventsAppended(ctx.database.db, job.data.events.map((e) => e.eventId));
      return r;
    } catch (err) {
      const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (!final) throw err;
      // Last attempt: park the events in Postgres; the drainer appends them later.
      await insertAuditDlq(ctx.database.db, job.data.events.map((e) => ({ ...e, reason: `append failed: ${(err as Error).message}` })));
      ctx.logger.error({ err: (err as Error).message, events: job.data.events.length }, 'audit append failed; events moved to the audit DLQ');
      return { appended: 0, duplicates: 0, head: null, checkpoint: null };
    }
  };
}

/**
 * Background duties of a worker serving `audit`: drain the audit DLQ table into the
 * chain (events from a Redis outage, CLI tools, exhausted jobs) and sign a checkpoint
 * when the head moved and the interval passed. Plain timers: they need no Redis.
 */
export function startAuditMaintenance(ctx: WorkerContext): { stop(): void } {
  const signer = ctx.auditSigner;
  if (!signer) return { stop() {} };
  let draining = false;
  const drain = async () => {
    if (draining) return;
    draining = true;
    try {
      for (;;) {
        const rows = await pendingAuditDlq(ctx.database.db, 500);
        if (rows.length === 0) break;
        try {
          const r = await appendAuditEvents(ctx.database.db, ctx.config.nodeId, signer, rows, { checkpointEvery: ctx.config.audit.checkpointEvery });
          ctx.metrics.auditAppends.inc(r.appended);
          await markAuditDlqAppended(ctx.database.db, rows.map((x) => x.id));
        } catch (err) {
          await markAuditDlqFailed(ctx.database.db, rows.map((x) => x.id), (err as Error).message).catch(() => {});
          throw err;
        }
        if (rows.length < 500) break;
      }
    } catch (err) {
      ctx.logger.warn({ err: (err as Error).message }, 'audit DLQ drain failed; retrying');
    } finally {
      draining = false;
    }
  };
  const checkpoint = () => checkpointIfAdvanced(ctx.database.db, ctx.config.nodeId, signer).catch((err) => ctx.logger.warn({ err: (err as Error).message }, 'audit checkpoint failed'));
  const drainTimer = setInterval(() => void drain(), 2000);
  const cpTimer = setInterval(() => void checkpoint(), ctx.config.audit.checkpointIntervalMs);
  void drain();
  return {
    stop() {
      clearInterval(drainTimer);
      clearInterval(cpTimer);
    },
  };
}
