import { afterEach, describe, expect, it } from 'vitest';
import { replayDepsFrom, replayRound, replayWithinBudget } from '../../src/federation/dlq-replay.js';
import { pushToPeer, type PusherDeps } from '../../src/federation/pusher.js';
import { RefusalBreaker } from '../../src/federation/refusal-breaker.js';
import { validateMemory } from '../../src/memory/model.js';
import { getCursor } from '../../src/store/cursors.js';
import { comparePositions, type FeedPosition } from '../../src/store/feed.js';
import { applyReplicated } from '../../src/store/replica.js';
import { newKeyDir } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';
import { REDIS_URL } from '../helpers/env.js';
import { createRedis } from '../../queues/connection.js';
import { workerContext } from '../helpers/worker-context.js';

/*
 * The refusal breaker against an HTTP peer that refuses every row, through real Postgres
 * (feed, cursor, DLQ) and real Redis (breaker state). Requests are counted at the peer.
 * Batches of 20 rows: bisecting one refused batch down to single rows costs 2 x 20 - 1 = 39
 * requests; an open breaker sends it once.
 */
const PEER_ID = 'peer-rb';
const BATCH = 20;
const BISECTED = 2 * BATCH - 1;
const PROBE_MS = 60_000;

describe('refusal breaker', () => {
  const open: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close();
  });

  async function setup(opts: { breakerBatches?: number } = {}) {
    const keyDir = newKeyDir();
    const peer = await new UpstreamReceiver(PEER_ID, keyDir).start();
    const t = await workerContext({ nodeId: 'rb-node', keyDir, peers: [{ id: PEER_ID, url: peer.url }], env: { PUSH_BATCH_MAX: String(BATCH) } });
    open.push(async () => {
      await t.close();
      await peer.stop();
    });
    // A clock the test moves: probes are due when it says so.
    let now = 1_000_000;
    const breaker = new RefusalBreaker(t.ctx.redis, t.prefix, { batches: opts.breakerBatches ?? 3, probeMs: PROBE_MS, now: () => now }, t.ctx.logger);
    const db = t.ctx.database.db;
    const peerConfig = t.ctx.peers.get(PEER_ID)!;
    const pusher: PusherDeps = {
      db,
      client: t.ctx.client,
      selfId: 'rb-node',
      batchMax: BATCH,
      batchMaxBytes: t.ctx.config.push.batchMaxBytes,
      logger: t.ctx.logger,
      metrics: t.ctx.metrics,
      breaker,
      publishAck: async () => {},
    };
    let n = 0;
    let committed: FeedPosition | null = null;
    const commit = async (count: number) => {
      const rows = Array.from({ length: count }, () => validateMemory(wireMemory({ id: `rb-${String(n++).padStart(4, '0')}` })));
      committed = (await applyReplicated(db, { memories: rows, tombstones: [], originPeer: null })).position;
      return rows.map((r) => r.id);
    };
    // Push runs until the cursor reaches the last commit: a commit is read only once it is
    // below the feed horizon (another test's open transaction may hold it back a moment).
    const push = async () => {
      const total = { deadLettered: 0, rows: 0 };
      for (let i = 0; ; i++) {
        const r = await pushToPeer(pusher, peerConfig, 60_000);
        total.deadLettered += r.deadLettered;
        total.rows += r.rows;
        if (!committed || comparePositions(r.cursor, committed) >= 0) return total;
        if (i > 200) throw new Error('the last commit never passed the feed horizon');
        await new Promise((res) => setTimeout(res, 50));
      }
    };
    const replay = replayDepsFrom(t.ctx.config, { db, client: t.ctx.client, logger: t.ctx.logger, metrics: t.ctx.metrics, audit: { record() {} }, peers: t.ctx.peers, breaker });
    const dlq = async () =>
      (await t.ctx.database.sql`SELECT memory_id, status, failure_class, last_error, attempts FROM federation_push_dlq WHERE peer_id = ${PEER_ID} ORDER BY memory_id`) as unknown as Array<{
        memory_id: string;
        status: string;
        failure_class: string;
        last_error: string;
        attempts: number;
      }>;
    const counter = async (name: string, labels: Record<string, string>) => {
      const m = (await t.ctx.metrics.registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
      return m?.value ?? 0;
    };
    return { t, peer, breaker, commit, push, replay, dlq, counter, advance: (ms: number) => (now += ms) };
  }

  it('a peer refusing every batch: after 3 bisected batches each batch is one request, dead-lettered whole with the peer reason', async () => {
    const s = await setup();
    const ids = await s.commit(10 * BATCH);
    s.peer.failWith = { status: 422 };
    const run = await s.push();
    expect(run).toEqual({ deadLettered: 10 * BATCH, rows: 0 });
    // 3 batches bisected, then the breaker is open: the 7 others cost one request each
    // (without the breaker: 10 x 39 = 390 requests).
    expect(s.peer.requests).toBe(3 * BISECTED + 7);
    expect(await s.breaker.state(PEER_ID)).toMatchObject({ open: true, refusedBatches: 10, reason: expect.stringContaining('HTTP 422') });
    const rows = await s.dlq();
    expect(rows.map((r) => r.memory_id)).toEqual(ids);
    for (const r of rows) expect(r).toMatchObject({ status: 'pending', failure_class: 'permanent', last_error: expect.stringContaining('HTTP 422 {"error":"induced"}') });
    expect(rows.filter((r) => r.last_error.includes('refusal breaker open')).map((r) => r.memory_id)).toEqual(ids.slice(3 * BATCH));
    expect(await s.counter('memfed_push_refused_rows_total', { peer: PEER_ID, class: 'permanent' })).toBe(10 * BATCH);
    // The cursor passed every refused row: they are in the DLQ, not holding back the feed.
    expect((await s.push()).rows).toBe(0);
    expect(s.peer.requests).toBe(3 * BISECTED + 7);
  });

  it('DLQ replays the peer refuses again never open the breaker: only live batches do', async () => {
    const s = await setup();
    await s.commit(2 * BATCH);
    s.peer.failWith = { status: 422 };
    // Two live batches refused whole: one short of opening.
    expect((await s.push()).deadLettered).toBe(2 * BATCH);
    expect(await s.breaker.state(PEER_ID)).toMatchObject({ open: false, refusedBatches: 2 });
    // Replay rounds resend those rows, refused whole again, more often than the threshold.
    for (let i = 0; i < 4; i++) await replayRound(s.replay);
    expect(await s.breaker.state(PEER_ID)).toMatchObject({ open: false, refusedBatches: 2 });
    // The next live batch refused whole is what opens it (and it was still bisected).
    const before = s.peer.requests;
    await s.commit(BATCH);
    await s.push();
    expect(s.peer.requests - before).toBe(BISECTED);
    expect((await s.breaker.state(PEER_ID)).open).toBe(true);
  });

  it('without the breaker (PUSH_REFUSAL_BREAKER_BATCHES=0) every refused batch is bisected', async () => {
    const s = await setup({ breakerBatches: 0 });
    await s.commit(10 * BATCH);
    s.peer.failWith = { status: 422 };
    expect((await s.push()).deadLettered).toBe(10 * BATCH);
    expect(s.peer.requests).toBe(10 * BISECTED);
    expect((await s.breaker.state(PEER_ID)).open).toBe(false);
  });

  it('an upstream peer counting every row skipped opens it too; its whole batches are dead-lettered as skipped', async () => {
    const s = await setup();
    const ids = await s.commit(5 * BATCH);
    for (const id of ids) s.peer.refuse.add(id);
    expect((await s.push()).deadLettered).toBe(5 * BATCH);
    expect(s.peer.requests).toBe(3 * BISECTED + 2);
    const rows = await s.dlq();
    expect(rows.filter((r) => r.last_error === `peer reported skipped (${BATCH} of ${BATCH}) (refusal breaker open: the batch of ${BATCH} rows was dead-lettered whole, not split)`)).toHaveLength(2 * BATCH);
    for (const r of rows) expect(r.failure_class).toBe('skipped');
    expect(s.peer.received.size).toBe(0);
  });

  it('while open, DLQ replay sends nothing and burns no attempt; the due probe closes it once the peer accepts, and replay delivers every row', async () => {
    const s = await setup();
    const ids = await s.commit(10 * BATCH);
    s.peer.failWith = { status: 422 };
    await s.push();
    const before = s.peer.requests;
    // The peer is fixed, but the breaker does not know yet: replay holds off until the probe.
    s.peer.failWith = null;
    const held = await replayRound(s.replay);
    expect(held).toMatchObject({ replayed: 0, failed: 0 });
    expect(s.peer.requests).toBe(before);
    expect((await s.dlq()).every((r) => r.status === 'pending' && r.attempts === 0)).toBe(true);
    expect(await s.counter('memfed_push_dlq_replay_total', { peer: PEER_ID, outcome: 'breaker_open' })).toBe(10 * BATCH);

    s.advance(PROBE_MS);
    const run = await replayWithinBudget(s.replay, {}, 60_000);
    expect(run.replayed).toBe(10 * BATCH);
    expect((await s.breaker.state(PEER_ID)).open).toBe(false);
    // Nothing lost: every row is at the peer, every DLQ row replayed.
    expect([...s.peer.received.keys()].sort()).toEqual(ids);
    expect((await s.dlq()).every((r) => r.status === 'replayed')).toBe(true);
    // One request per batch of 20 once the peer accepts.
    expect(s.peer.requests - before).toBe(10);
  });

  it('a probe the peer still refuses keeps it open; the next probe waits PUSH_REFUSAL_BREAKER_PROBE_MS', async () => {
    const s = await setup();
    await s.commit(3 * BATCH);
    s.peer.failWith = { status: 422 };
    await s.push();
    expect((await s.breaker.state(PEER_ID)).open).toBe(true);
    await s.commit(2 * BATCH);
    s.advance(PROBE_MS);
    let before = s.peer.requests;
    await s.push();
    // The first batch was the probe (bisected), the second went whole.
    expect(s.peer.requests - before).toBe(BISECTED + 1);
    expect((await s.breaker.state(PEER_ID)).open).toBe(true);
    await s.commit(2 * BATCH);
    s.advance(PROBE_MS - 1);
    before = s.peer.requests;
    await s.push();
    expect(s.peer.requests - before).toBe(2);
  });

  it('while open, a batch the peer accepts closes it at once (no probe needed)', async () => {
    const s = await setup();
    await s.commit(3 * BATCH);
    s.peer.failWith = { status: 422 };
    await s.push();
    s.peer.failWith = null;
    const later = await s.commit(BATCH);
    expect((await s.push()).rows).toBe(BATCH);
    expect((await s.breaker.state(PEER_ID)).open).toBe(false);
    expect([...s.peer.received.keys()].sort()).toEqual(later);
  });

  it('while open, a transient failure still holds the cursor: nothing is dead-lettered', async () => {
    const s = await setup();
    await s.commit(3 * BATCH);
    s.peer.failWith = { status: 422 };
    await s.push();
    const cursor = await getCursor(s.t.ctx.database.db, PEER_ID);
    await s.commit(BATCH);
    s.peer.failWith = { status: 503 };
    await expect(s.push()).rejects.toMatchObject({ failureClass: 'transient' });
    const after = await getCursor(s.t.ctx.database.db, PEER_ID);
    expect({ txid: after.txid, seq: after.seq }).toEqual({ txid: cursor.txid, seq: cursor.seq });
    expect((await s.dlq()).length).toBe(3 * BATCH);
  });

  it('two worker processes share one breaker: it opens on their combined count, and a due probe goes to exactly one of them', async () => {
    const s = await setup();
    const other = createRedis(REDIS_URL, 'worker', 'rb-other');
    open.push(() => other.quit());
    let now = 5_000;
    const a = new RefusalBreaker(s.t.ctx.redis, s.t.prefix, { batches: 3, probeMs: PROBE_MS, now: () => now });
    const b = new RefusalBreaker(other, s.t.prefix, { batches: 3, probeMs: PROBE_MS, now: () => now });
    expect(await a.record('peer-x', 'refused_whole', 'r1')).toBeNull();
    expect(await b.record('peer-x', 'refused_whole', 'r2')).toBeNull();
    expect(await a.record('peer-x', 'refused_whole', 'r3')).toBe('opened');
    expect(await b.mode('peer-x')).toBe('whole');
    now += PROBE_MS;
    const modes = await Promise.all([a.mode('peer-x'), b.mode('peer-x'), a.mode('peer-x'), b.mode('peer-x')]);
    expect(modes.filter((m) => m === 'probe')).toHaveLength(1);
    expect(modes.filter((m) => m === 'whole')).toHaveLength(3);
    expect(await b.record('peer-x', 'accepted', '')).toBe('closed');
    expect(await a.mode('peer-x')).toBe('split');
    expect(await a.state('peer-x')).toEqual({ open: false, refusedBatches: 0, openedAt: null, probeAt: null, reason: null });
  });
});
