import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PeerClient } from '../../src/federation/client.js';
import { replayRound } from '../../src/federation/dlq-replay.js';
import { KeyRing } from '../../src/federation/keys.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { deadLetter } from '../../src/store/dlq.js';
import { REDIS_URL, waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

const ADMIN = { authorization: 'Bearer admin-secret' };
let n: TestNode;
let peer: UpstreamReceiver;
let keyDir: string;

beforeAll(async () => {
  keyDir = newKeyDir();
  peer = await new UpstreamReceiver('peer-d', keyDir).start();
  n = await startTestNode({
    id: 'dlq-node',
    keyDir,
    peers: [{ id: 'peer-d', url: peer.url }],
    env: { DLQ_MAX_REPLAY_ATTEMPTS: '3', DLQ_REPLAY_INTERVAL_MS: '300', ADMIN_TOKEN: 'admin-secret', PUSH_BATCH_MAX: '100' },
  });
});
afterAll(async () => {
  await n?.destroy();
  await peer?.stop();
});

const dlqRows = (where = 'true') => n.db.database.sql.unsafe(`SELECT id, memory_id, status, attempts, failure_class, last_error FROM federation_push_dlq WHERE ${where} ORDER BY id`);

describe('push DLQ', () => {
  it('poison row: dead-lettered alone, quarantined after the attempt limit, requeued and delivered once the peer accepts', async () => {
    peer.refuse.add('poison-1');
    const created = await api(n.url, 'POST', '/api/v1/memories/bulk', [{ id: 'poison-1', title: 'bad', content: 'x' }, { title: 'good 1', content: 'x' }, { title: 'good 2', content: 'x' }]);
    expect(created.json.created).toBe(3);
    const good = created.json.ids.filter((id: string) => id !== 'poison-1');
    await waitFor(async () => good.every((id: string) => peer.received.has(id)), { what: 'good rows delivered' });
    // replay ticks every 300 ms: attempts climb to 3, then quarantine
    const rows = await waitFor(async () => {
      const r = await dlqRows(`memory_id = 'poison-1'`);
      return r[0]?.status === 'quarantined' ? r : undefined;
    }, { timeoutMs: 20_000, what: 'quarantine' });
    expect(rows).toHaveLength(1);
    expect(rows[0]!.attempts).toBe(3);
    // No longer retried: a canary row dead-lettered after the quarantine is replayed (so
    // replay rounds ran since), and none of them offered the quarantined row again.
    const offeredAtQuarantine = peer.offered.get('poison-1');
    expect(offeredAtQuarantine).toBeGreaterThanOrEqual(3);
    const canary = `canary-${randomUUID()}`;
    await deadLetter(n.db.database.db, [{ peerId: 'peer-d', memoryId: canary, op: 'upsert', payload: wireMemory({ id: canary }), failureClass: 'skipped', error: 'x' }]);
    // Received by the peer is not yet resolved here: wait until the round marked it replayed.
    await waitFor(async () => peer.received.has(canary) && (await dlqRows(`memory_id = '${canary}'`))[0]?.status === 'replayed', { what: 'a replay round after the quarantine' });
    expect(peer.offered.get('poison-1')).toBe(offeredAtQuarantine);
    expect((await dlqRows(`memory_id = 'poison-1'`))[0]).toMatchObject({ status: 'quarantined', attempts: 3 });

    const stats = await api(n.url, 'GET', '/api/v1/admin/dlq/stats', undefined, ADMIN);
    expect(stats.json.byPeer).toEqual([{ peerId: 'peer-d', pending: 0, quarantined: 1, oldestPendingAgeSeconds: null }]);
    const metrics = await api(n.url, 'GET', '/metrics');
    expect(metrics.text).toMatch(/memfed_push_dlq_quarantined\{peer="peer-d",node="dlq-node",role="all",process="[^"]+"\} 1/);
    expect(metrics.text).toMatch(/ai_memory_federation_push_dlq_quarantined_total\{peer="peer-d",node="dlq-node",role="all",process="[^"]+"\} 1/);

    peer.refuse.delete('poison-1');
    const requeue = await api(n.url, 'POST', '/api/v1/admin/dlq/requeue', { peer: 'peer-d' }, ADMIN);
    expect(requeue.json).toEqual({ requeued: 1, superseded: 0 });
    await waitFor(async () => peer.received.has('poison-1'), { what: 'delivered after requeue' });
    await waitFor(async () => (await dlqRows(`memory_id = 'poison-1'`))[0]?.status === 'replayed');
  });

  it('100 quarantined rows at the head never block the rows behind them', async () => {
    const heads = Array.from({ length: 100 }, (_, i) => `head-${i}`);
    await deadLetter(n.db.database.db, heads.map((id) => ({ peerId: 'peer-d', memoryId: id, op: 'upsert' as const, payload: wireMemory({ id }), failureClass: 'skipped', error: 'old' })));
    await n.db.database.sql`UPDATE federation_push_dlq SET status = 'quarantined', attempts = 3, quarantined_at = now() WHERE memory_id LIKE 'head-%'`;
    const behind = Array.from({ length: 20 }, (_, i) => `behind-${i}`);
    await deadLetter(n.db.database.db, behind.map((id) => ({ peerId: 'peer-d', memoryId: id, op: 'upsert' as const, payload: wireMemory({ id }), failureClass: 'skipped', error: 'x' })));
    await waitFor(async () => behind.every((id) => peer.received.has(id)), { timeoutMs: 10_000, what: 'rows behind the quarantined head delivered' });
    expect(heads.some((id) => peer.received.has(id))).toBe(false);
  });

  it('two replayers at once never replay one row twice', async () => {
    const ids = Array.from({ length: 600 }, () => `twin-${randomUUID()}`);
    // Keep the node's own replayer out of the way: rows for a peer only this test replays to.
    const other = await new UpstreamReceiver('peer-twin', keyDir).start();
    try {
      await deadLetter(n.db.database.db, ids.map((id) => ({ peerId: 'peer-twin', memoryId: id, op: 'upsert' as const, payload: wireMemory({ id }), failureClass: 'skipped', error: 'x' })));
      const keys = await KeyRing.load(keyDir, 'dlq-node');
      const deps = {
        db: n.db.database.db,
        client: new PeerClient({ selfId: 'dlq-node', signingKey: keys.signingKey, apiKey: '', timeoutMs: 5000 }),
        selfId: 'dlq-node',
        peers: new Map([['peer-twin', { id: 'peer-twin', url: other.url }]]),
        batchMax: 50,
        batchMaxBytes: 8 * 1024 * 1024,
        maxAttempts: 3,
        replayMaxBatch: 256,
        logger: createLogger('silent'),
        metrics: createMetrics({ nodeId: 't', role: 't', defaultMetrics: false }),
        onQuarantine: () => {},
      };
      for (let round = 0; round < 10; round++) {
        const [a, b] = await Promise.all([replayRound(deps), replayRound(deps)]);
        if (a.taken + b.taken === 0) break;
      }
      expect(other.deliveries.size).toBe(600);
      expect([...other.deliveries.values()].every((c) => c === 1)).toBe(true);
      const [{ n: replayed }] = (await n.db.database.sql`SELECT count(*)::int AS n FROM federation_push_dlq WHERE peer_id = 'peer-twin' AND status = 'replayed'`) as unknown as [{ n: number }];
      expect(replayed).toBe(600);
    } finally {
      await other.stop();
    }
  });

  it('a backlog larger than one run drains through follow-up drain jobs, not one tick at a time', async () => {
    // A node whose replay tick never comes during the test (once a day), whose runs each
    // stop after one round (budget 0) of 64 rows (the floor): 640 rows need 10 runs, and
    // only follow-up jobs can make them.
    const drainPeer = await new UpstreamReceiver('peer-drain', keyDir).start();
    const d = await startTestNode({
      id: 'dlq-drain-node',
      keyDir,
      peers: [{ id: 'peer-drain', url: drainPeer.url }],
      env: { DLQ_REPLAY_INTERVAL_MS: '86400000', DLQ_REPLAY_MAX_BATCH: '64', DLQ_RUN_BUDGET_MS: '0', ADMIN_TOKEN: 'admin-secret', PUSH_BATCH_MAX: '64' },
    });
    const conn = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const q = new Queue('dlq', { connection: conn, prefix: d.prefix });
    try {
      // A job scheduler with `every` runs its first tick at once: let it finish on an empty
      // DLQ, so every row below is replayed by the operator run and its follow-ups alone.
      await waitFor(async () => (await q.getJobs(['completed'], 0, -1)).some((j) => j.data.reason === 'tick'), { what: 'the first replay tick done' });
      const ids = Array.from({ length: 640 }, (_, i) => `drain-${i}-${randomUUID().slice(0, 8)}`);
      await deadLetter(d.db.database.db, ids.map((id) => ({ peerId: 'peer-drain', memoryId: id, op: 'upsert' as const, payload: wireMemory({ id }), failureClass: 'transient', error: 'peer was down' })));
      const replay = await api(d.url, 'POST', '/api/v1/admin/dlq/replay', { peer: 'peer-drain' }, ADMIN);
      expect(replay.status).toBe(202);
      await waitFor(async () => ids.every((id) => drainPeer.received.has(id)), { timeoutMs: 60_000, intervalMs: 100, what: '640 rows drained' });
      await waitFor(async () => Number((await d.db.database.sql`SELECT count(*)::int AS n FROM federation_push_dlq WHERE status = 'pending'`)[0]!.n) === 0, { what: 'no pending rows left' });
      // The peer has every row before the last job is marked completed: wait for the jobs'
      // own account of all 640 (it never comes if rows were replayed some other way).
      const replayedBy = (all: Awaited<ReturnType<typeof q.getJobs>>) => all.filter((j) => j.data.reason !== 'tick').reduce((sum, j) => sum + ((j.returnvalue as { replayed?: number } | null)?.replayed ?? 0), 0);
      const jobs = await waitFor(async () => {
        const all = await q.getJobs(['completed'], 0, -1);
        return all.filter((j) => j.data.reason === 'drain').length >= 9 && replayedBy(all) >= 640 ? all : undefined;
      }, { what: 'the drain jobs completed' });
      const replayed = jobs.filter((j) => j.data.reason !== 'tick').map((j) => j.returnvalue as { rounds: number; replayed: number });
      // One operator run plus at least nine follow-ups, one round of at most 64 rows each.
      expect(jobs.filter((j) => j.data.reason === 'operator')).toHaveLength(1);
      expect(replayed.every((r) => r.rounds === 1 && r.replayed <= 64)).toBe(true);
      expect(replayed.reduce((sum, r) => sum + r.replayed, 0)).toBe(640);
      expect([...drainPeer.deliveries.values()].every((c) => c === 1)).toBe(true);
    } finally {
      await q.close();
      conn.disconnect();
      await d.destroy();
      await drainPeer.stop();
    }
  });

  it('a peer outage never burns DLQ attempts nor overwrites the refusal reason', async () => {
    await deadLetter(n.db.database.db, [{ peerId: 'peer-d', memoryId: 'outage-1', op: 'upsert', payload: wireMemory({ id: 'outage-1' }), failureClass: 'skipped', error: 'original refusal' }]);
    peer.failWith = { status: 503 };
    try {
      const before = peer.requests;
      await waitFor(async () => peer.requests >= before + 3, { timeoutMs: 15_000, what: 'several replay ticks against the down peer' });
      const [row] = await dlqRows(`memory_id = 'outage-1'`);
      expect(row).toMatchObject({ status: 'pending', attempts: 0, failure_class: 'skipped', last_error: 'original refusal' });
    } finally {
      peer.failWith = null;
    }
    await waitFor(async () => peer.received.has('outage-1'), { what: 'replayed once the peer is back' });
  });

  it('purge is a dry run until confirmed, and admin routes need the token', async () => {
    await deadLetter(n.db.database.db, [{ peerId: 'peer-gone', memoryId: 'p1', op: 'upsert', payload: wireMemory({ id: 'p1' }), failureClass: 'permanent', error: 'x' }]);
    const dry = await api(n.url, 'POST', '/api/v1/admin/dlq/purge', { peer: 'peer-gone' }, ADMIN);
    expect(dry.json).toEqual({ matched: 1, purged: 0, dry_run: true });
    const real = await api(n.url, 'POST', '/api/v1/admin/dlq/purge', { peer: 'peer-gone', dry_run: false }, ADMIN);
    expect(real.json).toEqual({ matched: 1, purged: 1, dry_run: false });
    expect((await dlqRows(`peer_id = 'peer-gone'`))[0]!.status).toBe('purged');
    expect((await api(n.url, 'GET', '/api/v1/admin/dlq/stats')).status).toBe(401);
    expect((await api(n.url, 'GET', '/api/v1/admin/dlq/stats', undefined, { authorization: 'Bearer wrong' })).status).toBe(401);
    const frac = await api(n.url, 'GET', '/api/v1/admin/dlq?limit=1.5', undefined, ADMIN);
    expect(frac.status).toBe(400);
    expect(frac.json.code).toBe('INVALID_QUERY');
    const listed = await api(n.url, 'GET', '/api/v1/admin/dlq?status=purged', undefined, ADMIN);
    expect(listed.json.rows[0].createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$/);
    const bad = await api(n.url, 'POST', '/api/v1/admin/dlq/purge', { all: true }, ADMIN);
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('INVALID_SELECTOR');
  });
});
