import type { Job } from 'bullmq';
import { PeerRequestError } from '../src/federation/client.js';
import { CATCHUP_PAGE_LIMIT, pullFromPeer, type PullResult } from '../src/federation/catchup.js';
import { WatermarkMoved, recordPullError } from '../src/store/watermarks.js';
import { enqueueCatchup, type CatchupJob } from '../queues/catchup.js';
import type { WorkerContext } from './context.js';

const RUN_BUDGET_MS = 20_000;

/** `catchup.pull`: one bounded pull (src/federation/catchup.ts); more to fetch continues at once. */
export function catchupProcessor(ctx: WorkerContext) {
  return async (job: Job<CatchupJob>): Promise<PullResult | { skipped: string }> => {
    const peer = ctx.peers.get(job.data.peerId);
    if (!peer) return { skipped: `peer ${job.data.peerId} is no longer configured` };
    try {
      const r = await pullFromPeer(
        { db: ctx.database.db, client: ctx.client, logger: ctx.logger, metrics: ctx.metrics, pageLimit: CATCHUP_PAGE_LIMIT, policy: ctx.policy, audit: ctx.audit, clockSkewMs: ctx.config.federation.clockSkewMs, tombstoneGraceMs: ctx.config.expiry.tombstoneGraceMs, memoryMaxBytes: ctx.config.limits.memoryMaxBytes },
        peer,
        RUN_BUDGET_MS,
      );
      if (!r.caughtUp && !r.failedRow) await enqueueCatchup(ctx.queues.catchup, peer.id, 'continue');
      return r;
    } catch (err) {
      if (err instanceof WatermarkMoved) return { skipped: err.message };
      if (err instanceof PeerRequestError) {
        ctx.metrics.catchupPulls.inc({ peer: peer.id, outcome: 'failed' });
        await recordPullError(ctx.database.db, peer.id, err.message).catch((e) => ctx.logger.warn({ err: e, peer: peer.id }, 'could not record the pull error'));
      }
      // Failed in Bull Board with the reason; the next tick retries from the same watermark.
      throw err;
    }
  };
}
