import type { Job } from 'bullmq';
import { runExpirySweep, runTombstoneGc, type ExpiryRun } from '../src/expiry.js';
import { enqueueExpiry, type ExpiryJob } from '../queues/expiry.js';
import type { WorkerContext } from './context.js';

/** `expiry.sweep` / `expiry.tombstone-gc`: one bounded run (src/expiry.ts); more due continues at once. */
export function expiryProcessor(ctx: WorkerContext) {
  return async (job: Job<ExpiryJob>): Promise<ExpiryRun> => {
    const deps = { db: ctx.database.db, metrics: ctx.metrics, logger: ctx.logger, batchMax: ctx.config.expiry.batchMax, runBudgetMs: ctx.config.expiry.runBudgetMs };
    const run = job.data.task === 'sweep' ? await runExpirySweep(deps) : await runTombstoneGc({ ...deps, tombstoneGraceMs: ctx.config.expiry.tombstoneGraceMs });
    if (run.more) await enqueueExpiry(ctx.queues.expiry, job.data.task);
    return run;
  };
}
