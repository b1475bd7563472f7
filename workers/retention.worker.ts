import type { Job } from 'bullmq';
import { runRetention, type RetentionRun } from '../src/federation/retention.js';
import { enqueueRetention, type RetentionJob } from '../queues/retention.js';
import type { WorkerContext } from './context.js';

/** The configured peers (active and paused): their delivery cursors hold the feed. */
export const configuredPeerIds = (ctx: WorkerContext) => (ctx.peerDirectory ? ctx.peerDirectory.all().filter((p) => p.state !== 'removed').map((p) => p.id) : [...ctx.peers.keys()]);

/** `retention.prune`: one retention run (src/federation/retention.ts); more to prune continues at once. */
export function retentionProcessor(ctx: WorkerContext) {
  return async (_job: Job<RetentionJob>): Promise<RetentionRun> => {
    const r = await runRetention({ db: ctx.database.db, logger: ctx.logger, metrics: ctx.metrics, settings: ctx.config.retention }, configuredPeerIds(ctx));
    if (r.more) await enqueueRetention(ctx.queues.retention);
    return r;
  };
}
