import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { PeerRequestError } from '../src/federation/client.js';
import { pushToPeer, type PushRunResult } from '../src/federation/pusher.js';
import { recordPeerError } from '../src/store/cursors.js';
import { publishAck } from '../queues/acks.js';
import type { JobPayloads } from '../queues/catalogue.js';
import { hasReplayable } from '../src/store/dlq.js';
import { comparePositions } from '../src/store/feed.js';
import { enqueueCatchup, enqueueDlqReplay, enqueuePush } from '../queues/producers.js';
import type { WorkerContext } from './context.js';

// Keep one run well inside the job lock; longer backlogs continue in the next job.
const RUN_BUDGET_MS = 15_000;
const UNENROLLED_RETRY_MS = 60_000;
const THROTTLE_DEFAULT_MS = 5_000;

/**
 * Push processor: delivers a peer's backlog and maps failure classes to BullMQ:
 * transient -> throw (retried with backoff, Retry-After honoured); throttle -> delayed
 * without burning an attempt; unenrolled -> failed now (visible in Bull Board), retried
 * by the reconciler after a pause. The cursor in Postgres never moves on failure.
 */
export function pushProcessor(ctx: WorkerContext) {
  return async (job: Job<JobPayloads['push']>, token?: string): Promise<PushRunResult | { skipped: string }> => {
    const peer = ctx.peers.get(job.data.peerId);
    if (!peer) return { skipped: `peer ${job.data.peerId} is no longer configured` };
    try {
      const result = await pushToPeer(
        {
          db: ctx.database.db,
          client: ctx.client,
          selfId: ctx.config.nodeId,
          batchMax: ctx.config.push.batchMax,
          batchMaxBytes: ctx.config.push.batchMaxBytes,
          logger: ctx.logger,
          metrics: ctx.metrics,
          publishAck: (peerId, pos, refused) => publishAck(ctx.redis, ctx.config.queuePrefix, peerId, pos, refused),
        },
        peer,
        RUN_BUDGET_MS,
      );
      // keepLastIfActive dedup turns this into exactly one follow-up run.
      if (!result.caughtUp) await enqueuePush(ctx.queues, peer.id, 'reconcile', job.data.until);
      else if (job.data.until && comparePositions(result.cursor, job.data.until) < 0 && token) {
        // The commit that asked for this run is not below the feed horizon yet (an older
        // transaction elsewhere on the cluster is still open): look again shortly instead
        // of leaving it to the reconciler. Backs off to 2 s; burns no attempt.
        const waits = job.data.horizonWaits ?? 0;
        await job.updateData({ ...job.data, horizonWaits: waits + 1 });
        await job.moveToDelayed(Date.now() + Math.min(50 * 2 ** waits, 2000), token);
        throw new DelayedError();
      }
      if (result.deadLettered > 0) ctx.logger.warn({ peer: peer.id, rows: result.deadLettered }, 'peer refused rows; dead-lettered');
      if (result.recovered) {
        ctx.logger.info({ peer: peer.id }, 'peer is back');
        // A peer that comes back gets its DLQ rows replayed now, not at the next tick.
        if (await hasReplayable(ctx.database.db, peer.id)) await enqueueDlqReplay(ctx.queues, 'recovered', peer.id);
        await enqueueCatchup(ctx.queues, peer.id, 'recovered');
      }
      return result;
    } catch (err) {
      if (!(err instanceof PeerRequestError)) throw err;
      const retryMs = err.failureClass === 'unenrolled' ? UNENROLLED_RETRY_MS : err.failureClass === 'throttle' ? (err.retryAfterMs ?? THROTTLE_DEFAULT_MS) : undefined;
      await recordPeerError(ctx.database.db, peer.id, err.failureClass, err.message, retryMs).catch(() => {});
      if (err.failureClass === 'throttle' && token) {
        await job.moveToDelayed(Date.now() + (retryMs ?? THROTTLE_DEFAULT_MS), token);
        throw new DelayedError();
      }
      if (err.failureClass === 'unenrolled') {
        ctx.logger.error({ peer: peer.id, err: err.message }, 'peer refuses our identity; check key enrolment');
        throw new UnrecoverableError(err.message);
      }
      ctx.metrics.fanoutRetries.inc({ peer: peer.id });
      const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (final) ctx.logger.error({ peer: peer.id, err: err.message }, 'push attempts exhausted; reconciler will retry');
      throw err;
    }
  };
}

/**
 * Backoff for every memfed queue: a peer's Retry-After when it sent one, else
 * exponential from 500 ms capped at 60 s, with full jitter on the upper half.
 */
export function backoffStrategy(attemptsMade: number, _type?: string, err?: Error): number {
  if (err instanceof PeerRequestError && err.retryAfterMs !== undefined) return err.retryAfterMs;
  const base = Math.min(500 * 2 ** Math.max(attemptsMade - 1, 0), 60_000);
  return Math.round(base / 2 + Math.random() * (base / 2));
}
