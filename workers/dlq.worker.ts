import type { Job } from 'bullmq';
import { refusalBreakerFor } from '../src/federation/refusal-breaker.js';
import { replayDepsFrom, replayWithinBudget, type ReplayRun } from '../src/federation/dlq-replay.js';
import { enqueueDlqReplay, type DlqJob } from '../queues/dlq.js';
import type { WorkerContext } from './context.js';

/**
 * `dlq.replay`: replay rounds (src/federation/dlq-replay.ts) while they make progress,
 * within DLQ_RUN_BUDGET_MS; a larger backlog continues in a follow-up job at once rather
 * than at the next tick.
 */
export function dlqProcessor(ctx: WorkerContext) {
  const breaker = refusalBreakerFor(ctx.redis, ctx.config, ctx.logger);
  return async (job: Job<DlqJob>): Promise<ReplayRun> => {
    const deps = replayDepsFrom(ctx.config, { db: ctx.database.db, client: ctx.client, logger: ctx.logger, metrics: ctx.metrics, audit: ctx.audit, peers: ctx.peers, breaker });
    const run = await replayWithinBudget(deps, job.data.peerId !== undefined ? { peerId: job.data.peerId } : {}, ctx.config.dlq.runBudgetMs);
    if (run.more) await enqueueDlqReplay(ctx.queues.dlq, 'drain', job.data.peerId);
    return run;
  };
}
