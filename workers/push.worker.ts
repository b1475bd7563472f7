import { DelayedError, type Job } from 'bullmq';
import { PeerRequestError } from '../src/federation/client.js';
import { pushToPeer, type PushRunResult } from '../src/federation/pusher.js';
import { refusalBreakerFor } from '../src/federation/refusal-breaker.js';
import { recordPeerError } from '../src/store/cursors.js';
import { comparePositions } from '../src/store/feed.js';
import { publishAck } from '../queues/acks.js';
import { enqueuePush, type PushJob } from '../queues/push.js';
import { onPeerRecovered } from '../queues/recovery.js';
import { ExpectedUnrecoverable, attemptOf, inSeconds, writeJobLog } from '../queues/worker.js';
import type { WorkerContext } from './context.js';

// Keep one run well inside the job lock; longer backlogs continue in the next job.
const RUN_BUDGET_MS = 15_000;
const UNENROLLED_RETRY_MS = 60_000;
const THROTTLE_DEFAULT_MS = 5_000;

/** Delay before looking again for a commit not yet below the feed horizon: 50 ms doubling to 2 s. */
export const horizonWaitMs = (waits: number) => Math.min(50 * 2 ** waits, 2000);

/**
 * `push.deliver`: delivers a peer's backlog (src/federation/pusher.ts) and maps failure
 * classes to BullMQ: transient -> throw (retried with backoff, Retry-After honoured);
 * throttle -> delayed without burning an attempt; unenrolled -> unrecoverable now
 * (visible in Bull Board), retried by the reconciler after a pause. The cursor in
 * Postgres never moves on failure.
 */
export function pushProcessor(ctx: WorkerContext) {
  const note = (job: Job<PushJob>, line: string) => writeJobLog(job, line, ctx.logger);
  const breaker = refusalBreakerFor(ctx.redis, ctx.config, ctx.logger);
  return async (job: Job<PushJob>, token?: string, signal?: AbortSignal): Promise<PushRunResult | { skipped: string }> => {
    const peer = ctx.peers.get(job.data.peerId);
    if (!peer) return { skipped: `peer ${job.data.peerId} is no longer configured` };
    let result: PushRunResult;
    try {
      result = await pushToPeer(
        {
          db: ctx.database.db,
          client: ctx.client,
          selfId: ctx.config.nodeId,
          batchMax: ctx.config.push.batchMax,
          batchMaxBytes: ctx.config.push.batchMaxBytes,
          relay: ctx.config.push.relay,
          logger: ctx.logger,
          metrics: ctx.metrics,
          breaker,
          // Asked before every batch: a run whose job this process lost stops there.
          stillActive: (id) => ctx.peers.has(id) && !signal?.aborted,
          snapshotTtlMs: ctx.config.retention.snapshotTtlMs,
          audit: ctx.audit,
          publishAck: (peerId, pos, refused, from) => publishAck(ctx.redis, ctx.config.queuePrefix, peerId, pos, refused, from),
        },
        peer,
        RUN_BUDGET_MS,
      );
    } catch (err) {
      if (!(err instanceof PeerRequestError)) throw err;
      const retryMs = err.failureClass === 'unenrolled' ? UNENROLLED_RETRY_MS : err.failureClass === 'throttle' ? (err.retryAfterMs ?? THROTTLE_DEFAULT_MS) : undefined;
      await recordPeerError(ctx.database.db, peer.id, err.failureClass, err.message, retryMs).catch((e) => ctx.logger.warn({ err: e, peer: peer.id }, 'could not record the peer error'));
      if (err.failureClass === 'throttle' && token) {
        const waitMs = retryMs ?? THROTTLE_DEFAULT_MS;
        await note(job, `${attemptOf(job)} throttled: ${err.message} | next try in ${inSeconds(waitMs)}, the same attempt (a throttle uses none)`);
        await job.moveToDelayed(Date.now() + waitMs, token);
        throw new DelayedError();
      }
      if (err.failureClass === 'unenrolled') {
        ctx.logger.error({ peer: peer.id, err }, 'peer refuses our identity; check key enrolment');
        throw new ExpectedUnrecoverable(`${err.message} (the reconciler tries again in ${UNENROLLED_RETRY_MS / 1000} s)`);
      }
      ctx.metrics.fanoutRetries.inc({ peer: peer.id });
      throw err;
    }
    // Its lock lost (or its worker replaced): whoever runs the job now carries on. The
    // follow-up covers a backlog left if nobody does (dedup makes it one run at most).
    if (signal?.aborted) {
      await enqueuePush(ctx.queues.push, peer.id, 'reconcile', job.data.until);
      return { skipped: `run stopped after ${result.batches} batches: ${String(signal.reason ?? 'cancelled')}` };
    }
    // Paused or removed while it ran: the run stopped before its next batch; no follow-up.
    if (!ctx.peers.has(peer.id)) return { skipped: `peer ${peer.id} was paused or removed during the run (after ${result.batches} batches)` };
    // keepLastIfActive dedup turns this into exactly one follow-up run.
    if (!result.caughtUp) await enqueuePush(ctx.queues.push, peer.id, 'reconcile', job.data.until);
    else if (job.data.until && comparePositions(result.cursor, job.data.until) < 0 && token) {
      // The commit that asked for this run is not below the feed horizon yet (an older
      // transaction elsewhere on the cluster is still open): look again shortly instead
      // of leaving it to the reconciler. Burns no attempt.
      const waits = job.data.horizonWaits ?? 0;
      await note(job, `${attemptOf(job)} waits: the commit that asked for this run (${job.data.until.txid}/${job.data.until.seq}) is not below the feed horizon yet, an older transaction is still open; cursor at ${result.cursor.txid}/${result.cursor.seq} | looking again in ${inSeconds(horizonWaitMs(waits))}, the same attempt`);
      await job.updateData({ ...job.data, horizonWaits: waits + 1 });
      await job.moveToDelayed(Date.now() + horizonWaitMs(waits), token);
      throw new DelayedError();
    }
    if (result.deadLettered > 0) {
      ctx.logger.warn({ peer: peer.id, rows: result.deadLettered }, 'peer refused rows; dead-lettered');
      await note(job, `peer refused ${result.deadLettered} of ${result.rows + result.deadLettered} rows: dead-lettered (memfed dlq list --peer ${peer.id}), the cursor passed them | first reason: ${result.refused[0]?.reason ?? '?'} | the result lists ${result.refused.length} with reasons`);
    }
    if (result.recovered) await onPeerRecovered({ db: ctx.database.db, queues: ctx.queues, logger: ctx.logger, metrics: ctx.metrics }, peer.id, 'acked');
    return result;
  };
}
