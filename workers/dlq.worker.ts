import type { Job } from 'bullmq';
import { replayRound, type ReplayRound } from '../src/federation/dlq-replay.js';
import type { JobPayloads } from '../queues/catalogue.js';
import { enqueueDlqReplay } from '../queues/producers.js';
import type { WorkerContext } from './context.js';

// Rounds continue while they make progress, within this budget; a larger backlog
// continues in a follow-up job at once rather than at the next tick.
const RUN_BUDGET_MS = 20_000;

export function dlqProcessor(ctx: WorkerContext) {
  return async (job: Job<JobPayloads['dlq']>): Promise<ReplayRound & { rounds: number }> => {
    const started = Date.now();
    const total = { backlog: 0, taken: 0, replayed: 0, failed: 0, throttled: 0, quarantined: 0, rounds: 0 };
    for (;;) {
      const r = await replayRound(
        {
          db: ctx.database.db,
          client: ctx.client,
          selfId: ctx.config.nodeId,
          peers: ctx.peers,
          batchMax: ctx.config.push.batchMax,
          maxAttempts: ctx.config.dlq.maxReplayAttempts,
          replayMaxBatch: ctx.config.dlq.replayMaxBatch,
          logger: ctx.logger,
          metrics: ctx.metrics,
          onQuarantine: (rows) => {
            for (const row of rows) {
              ctx.metrics.dlqQuarantines.inc({ peer: row.peerId });
              ctx.logger.error({ peer: row.peerId, memory: row.memoryId, dlqId: row.id, attempts: row.attempts, err: row.lastError }, 'DLQ row quarantined; an operator must requeue or purge it');
              ctx.audit.record({ kind: 'dlq.quarantined', subject: row.memoryId, details: { peer: row.peerId, dlq_id: row.id, attempts: row.attempts, failure_class: row.failureClass, last_error: row.lastError } });
            }
          },
        },
        job.data.peerId !== undefined ? { peerId: job.data.peerId } : {},
      );
      total.rounds++;
      total.backlog = r.backlog;
      total.taken += r.taken;
      total.replayed += r.replayed;
      total.failed += r.failed;
      total.throttled += r.throttled;
      total.quarantined += r.quarantined;
      const remaining = r.backlog - r.taken;
      const progressed = r.replayed > 0;
      if (!progressed || r.taken === 0) break;
      if (Date.now() - started > RUN_BUDGET_MS) {
        if (remaining > 0) await enqueueDlqReplay(ctx.queues, 'drain', job.data.peerId);
        break;
      }
    }
    return total;
  };
}
