import type { Job } from 'bullmq';
import { replayDepsFrom, replayWithinBudget, type ReplayRun } from '../src/federation/dlq-replay.js';
import { enqueueDlqReplay, type DlqJob } from '../queues/dlq.js';
import type { WorkerContext } from './context.js';

// Rounds continue while they make progress, within this budget; a larger backlog
// continues in a follow-up job at once rather than at the next tick.
const RUN_BUDGET_MS = 20_000;

/** `dlq.replay`: replay rounds (src/federation/dlq-replay.ts) within a budget. */
export function dlqProcessor(ctx: WorkerContext) {
  return async (job: Job<DlqJob>): Promise<ReplayRun> => {
    const deps = replayDepsFrom(ctx.config, { db: ctx.database.db, client: ctx.client, logger: ctx.logger, metrics: ctx.metrics, audit: ctx.audit, peers: ctx.peers });
    const run = await replayWithinBudget(deps, job.data.peerId !== undefined ? { peerId: job.data.peerId } : {}, RUN_BUDGET_MS);
    if (run.more) await enqueueDlqReplay(ctx.queues.dlq, 'drain', job.data.peerId);
    return run;
  };
}
