import type { Job } from 'bullmq';
import { replayDepsFrom, replayRound, type ReplayRound } from '../src/federation/dlq-replay.js';
import type { JobPayloads } from '../queues/catalogue.js';
import { enqueueDlqReplay } from '../queues/producers.js';
import type { WorkerContext } from './context.js';

export function dlqProcessor(ctx: WorkerContext) {
  // Rounds continue while they make progress, within DLQ_RUN_BUDGET_MS; a larger backlog
  // continues in a follow-up job at once rather than at the next tick.
  const budgetMs = ctx.config.dlq.runBudgetMs;
  return async (job: Job<JobPayloads['dlq']>): Promise<ReplayRound & { rounds: number }> => {
    const started = Date.now();
    const total = { backlog: 0, taken: 0, replayed: 0, failed: 0, throttled: 0, quarantined: 0, rounds: 0 };
    const deps = replayDepsFrom(ctx.config, { db: ctx.database.db, client: ctx.client, logger: ctx.logger, metrics: ctx.metrics, audit: ctx.audit, peers: ctx.peers });
    for (;;) {
      const r = await replayRound(deps, job.data.peerId !== undefined ? { peerId: job.data.peerId } : {});
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
      if (Date.now() - started >= budgetMs) {
        if (remaining > 0) await enqueueDlqReplay(ctx.queues, 'drain', job.data.peerId);
        break;
      }
    }
    return total;
  };
}
