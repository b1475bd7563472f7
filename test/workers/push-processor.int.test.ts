import type { Job, Worker } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { registerBreakerCollector } from '../../src/collectors.js';
import { refusalBreakerFor } from '../../src/federation/refusal-breaker.js';
import { validateMemory } from '../../src/memory/model.js';
import { getCursor } from '../../src/store/cursors.js';
import { FEED_START } from '../../src/store/feed.js';
import { applyReplicated } from '../../src/store/replica.js';
import { createRedis } from '../../queues/connection.js';
import { enqueuePush, pushQueue, type PushJob } from '../../queues/push.js';
import { defineWorker } from '../../queues/worker.js';
import { pushProcessor } from '../../workers/push.worker.js';
import { REDIS_URL, waitFor } from '../helpers/env.js';
import { newKeyDir } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';
import { workerContext } from '../helpers/worker-context.js';

/*
 * The push processor alone (no node around it): a real BullMQ worker from the queue
 * factory, real Redis and Postgres, and a peer that answers as told. How each failure
 * class maps onto BullMQ is what an operator sees in Bull Board.
 */
describe('push processor failure mapping', () => {
  const open: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close();
  });

  async function setup(commitRows = 1, env: Record<string, string> = {}, beforeWorker?: (peer: UpstreamReceiver) => void) {
    const keyDir = newKeyDir();
    const peer = await new UpstreamReceiver('peer-pp', keyDir).start();
    beforeWorker?.(peer);
    const t = await workerContext({ nodeId: 'pp-node', keyDir, peers: [{ id: 'peer-pp', url: peer.url }], env });
    const rows = Array.from({ length: commitRows }, (_, i) => validateMemory(wireMemory({ id: `pp-${i}` })));
    const committed = rows.length ? (await applyReplicated(t.ctx.database.db, { memories: rows, tombstones: [], originPeer: null })).position : null;
    const connection = createRedis(REDIS_URL, 'worker', 'pp-worker');
    const worker: Worker = defineWorker(pushQueue, pushProcessor(t.ctx), { connection, prefix: t.prefix, lockMs: 5000, logger: t.ctx.logger, metrics: t.ctx.metrics, concurrency: 1 });
    open.push(async () => {
      await worker.close();
      await connection.quit();
      await t.close();
      await peer.stop();
    });
    const job = async (): Promise<Job<PushJob>> => {
      // As after a commit: `until` makes the run wait for the commit to pass the feed horizon.
      await enqueuePush(t.ctx.queues.push, 'peer-pp', 'commit', committed ?? undefined);
      const [j] = await t.ctx.queues.push.getJobs(['waiting', 'active', 'delayed', 'completed', 'failed'], 0, 0);
      return j!;
    };
    return { ...t, peer, job };
  }

  it('delivers, moves the cursor and completes', async () => {
    const s = await setup(3);
    const j = await s.job();
    await waitFor(async () => (await j.isCompleted()) || null, { what: 'the push to complete' });
    expect([...s.peer.received.keys()].sort()).toEqual(['pp-0', 'pp-1', 'pp-2']);
    expect((await getCursor(s.ctx.database.db, 'peer-pp')).txid).not.toBe(FEED_START.txid);
  });

  it('a throttled push (429) is delayed by Retry-After without burning an attempt or moving the cursor', async () => {
    const s = await setup();
    s.peer.failWith = { status: 429, headers: { 'retry-after': '30' } };
    const j = await s.job();
    await waitFor(async () => (await s.ctx.queues.push.getJob(j.id!))?.isDelayed().then((d) => d && s.peer.requests > 0), { what: 'the job to be delayed after a 429' });
    const after = (await s.ctx.queues.push.getJob(j.id!))!;
    expect(after.attemptsMade).toBe(0);
    expect(after.timestamp + (after.delay ?? 0)).toBeGreaterThan(Date.now() + 20_000);
    const cursor = await getCursor(s.ctx.database.db, 'peer-pp');
    expect({ txid: cursor.txid, seq: cursor.seq }).toEqual(FEED_START);
    expect(cursor.lastErrorClass).toBe('throttle');
  });

  it('a peer refusing our identity (401) fails the job at once, unrecoverable, cursor untouched', async () => {
    const s = await setup();
    s.peer.failWith = { status: 401 };
    const j = await s.job();
    await waitFor(async () => (await s.ctx.queues.push.getJob(j.id!))?.isFailed(), { what: 'the job to fail' });
    const after = (await s.ctx.queues.push.getJob(j.id!))!;
    expect(after.attemptsMade).toBe(1);
    expect(after.failedReason).toMatch(/^\[unenrolled\] POST \/api\/v1\/sync\/push to peer-pp: HTTP 401/);
    const cursor = await getCursor(s.ctx.database.db, 'peer-pp');
    expect({ txid: cursor.txid, seq: cursor.seq }).toEqual(FEED_START);
    expect(cursor.lastErrorClass).toBe('unenrolled');
  });

  it('a transient failure (500) is retried with backoff, one attempt burnt, cursor untouched', async () => {
    const s = await setup();
    s.peer.failWith = { status: 500 };
    const j = await s.job();
    await waitFor(async () => {
      const cur = await s.ctx.queues.push.getJob(j.id!);
      return cur && cur.attemptsMade === 1 && (await cur.isDelayed());
    }, { what: 'the job to wait in backoff after one failed attempt' });
    const cursor = await getCursor(s.ctx.database.db, 'peer-pp');
    expect({ txid: cursor.txid, seq: cursor.seq }).toEqual(FEED_START);
    expect(cursor.lastErrorClass).toBe('transient');
  });

  it('a peer refusing every batch (422) trips its refusal breaker: the job completes with every row dead-lettered, the gauge reads it at scrape', async () => {
    // 8 batches of 10: 3 bisected (19 requests each), then 5 sent once each.
    const s = await setup(80, { PUSH_BATCH_MAX: '10' }, (peer) => (peer.failWith = { status: 422 }));
    registerBreakerCollector(s.ctx.metrics, refusalBreakerFor(s.ctx.redis, s.ctx.config), ['peer-pp']);
    const j = await s.job();
    await waitFor(async () => (await j.isCompleted()) || null, { what: 'the push to complete' });
    expect(s.peer.requests).toBe(3 * 19 + 5);
    const [dlq] = (await s.ctx.database.sql`SELECT count(*)::int AS n FROM federation_push_dlq WHERE peer_id = 'peer-pp' AND status = 'pending'`) as unknown as [{ n: number }];
    expect(dlq.n).toBe(80);
    expect(await s.ctx.metrics.render()).toMatch(/^memfed_push_refusal_breaker_open\{peer="peer-pp",node="pp-node",role="worker",process="[^"]+"\} 1$/m);
    expect(s.logLines().some((l) => l.msg?.startsWith('refusal breaker opened') && l.peer === 'peer-pp')).toBe(true);
  });

  it('a commit not yet below the feed horizon is looked for again shortly, burning no attempt', async () => {
    const s = await setup(0);
    // A position no transaction has reached: the run ends "caught up" short of it.
    await s.ctx.queues.push.add('push.deliver peer-pp', { peerId: 'peer-pp', reason: 'commit', until: { txid: '999999999999', seq: '1' } });
    await waitFor(async () => {
      const [j] = await s.ctx.queues.push.getJobs(['delayed'], 0, 0);
      return j && (j.data.horizonWaits ?? 0) >= 1 ? j : null;
    }, { what: 'a horizon wait' });
    const [j] = await s.ctx.queues.push.getJobs(['delayed', 'waiting', 'active'], 0, 0);
    expect(j!.attemptsMade).toBe(0);
    expect(s.peer.requests).toBe(0);
  });
});
