import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordPeerError, advanceCursor, getCursor } from '../../src/store/cursors.js';
import { deadLetter } from '../../src/store/dlq.js';
import { advanceWatermark, getWatermark, recordPullError, recordPullSuccess } from '../../src/store/watermarks.js';
import { buildStatusReport, type StatusDeps } from '../../src/status/report.js';
import { openQueueStatus } from '../../queues/status.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL } from '../helpers/env.js';
import { wireMemory } from '../helpers/peer.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';
import { QUEUE_NAMES } from '../../src/queue-names.js';

/*
 * The status report over a real database: failure streaks as the push and pull paths
 * record them, the state they give, lags, DLQ counts and the audit head; and the queue
 * figures over a real Redis.
 */
let t: TestDatabase;
const PEERS = [
  { id: 'peer-b', url: 'http://b' },
  { id: 'peer-c', url: 'http://c' },
];
const noQueues = async () => [];
const report = (over: Partial<StatusDeps> = {}) => buildStatusReport({ db: t.database.db, nodeId: 'node-a', peers: PEERS, queues: noQueues, ...over });
const peerOf = async (id: string) => (await report()).peers.find((p) => p.id === id)!;
const feedRow = (id: string) => t.database.sql`INSERT INTO change_feed (memory_id, op, committed_at) VALUES (${id}, 'upsert', now() - interval '7 seconds') RETURNING txid::text, seq::text`;

beforeAll(async () => {
  t = await createTestDatabase();
  for (const p of PEERS) {
    await getCursor(t.database.db, p.id);
    await getWatermark(t.database.db, p.id);
  }
});
afterAll(async () => t?.drop());

describe('status report', () => {
  it('shows a peer whose pushes fail as failing with the streak and error, and active again after an ack', async () => {
    expect(await peerOf('peer-b')).toMatchObject({ state: 'active', push: { failureStreak: 0, lastError: null, lagChanges: 0 } });
    const [row] = await feedRow('m1');
    await recordPeerError(t.database.db, 'peer-b', 'transient', 'connect ECONNREFUSED 127.0.0.1:1');
    await recordPeerError(t.database.db, 'peer-b', 'transient', 'HTTP 503 from peer');
    const failing = await peerOf('peer-b');
    expect(failing.state).toBe('failing');
    expect(failing.push).toMatchObject({ failureStreak: 2, lastError: 'HTTP 503 from peer', lastErrorClass: 'transient', lastSuccessAt: null, lagChanges: 1 });
    expect(failing.push.lagSeconds).toBeGreaterThanOrEqual(6);
    expect(Date.now() - Date.parse(failing.push.lastErrorAt!)).toBeLessThan(60_000);
    // the other peer is untouched
    expect((await peerOf('peer-c')).state).toBe('active');

    await advanceCursor(t.database.db, 'peer-b', { txid: row!.txid, seq: row!.seq });
    const back = await peerOf('peer-b');
    expect(back).toMatchObject({ state: 'active', push: { failureStreak: 0, lastError: null, lastErrorAt: null, lagChanges: 0, lagSeconds: 0 } });
    expect(back.push.lastSuccessAt).not.toBeNull();
  });

  it('counts failed and halted pulls in the pull streak; a successful pull resets it', async () => {
    await recordPullError(t.database.db, 'peer-c', 'HTTP 500 from peer');
    expect(await peerOf('peer-c')).toMatchObject({ state: 'failing', pull: { failureStreak: 1, lastError: 'HTTP 500 from peer' } });
    // A halted page (a row that failed to apply) is no successful pull either.
    const wm = await getWatermark(t.database.db, 'peer-c');
    await t.database.db.transaction((tx) => advanceWatermark(tx, 'peer-c', wm, { cursor: 'c1', since: null, lagRows: 5, lastRowAt: new Date(Date.now() - 40_000).toISOString(), halted: 'row m9 failed to apply: missing' }));
    const halted = await peerOf('peer-c');
    expect(halted).toMatchObject({ state: 'failing', pull: { failureStreak: 2, lastError: 'row m9 failed to apply: missing', lagRows: 5, lastSuccessAt: null } });
    expect(halted.pull.lagSeconds).toBeGreaterThanOrEqual(39);
    expect(halted.pull.lastErrorAt).toBe(halted.pull.lastPullAt);

    const moved = await getWatermark(t.database.db, 'peer-c');
    await t.database.db.transaction((tx) => advanceWatermark(tx, 'peer-c', moved, { cursor: 'c2', since: null, lagRows: 0, lastRowAt: null }));
    expect(await peerOf('peer-c')).toMatchObject({ state: 'active', pull: { failureStreak: 0, lastError: null, lagRows: 0, lagSeconds: 0 } });
    await recordPullError(t.database.db, 'peer-c', 'timeout');
    await recordPullSuccess(t.database.db, 'peer-c', 0);
    expect(await peerOf('peer-c')).toMatchObject({ state: 'active', pull: { failureStreak: 0, lastErrorAt: null } });
  });

  it('takes paused from its input, reports DLQ counts per peer and the audit head and checkpoint', async () => {
    await deadLetter(t.database.db, [{ peerId: 'peer-c', memoryId: 'd1', op: 'upsert', payload: wireMemory({ id: 'd1' }), failureClass: 'permanent', error: 'HTTP 400' }]);
    await t.database.sql`INSERT INTO federation_push_dlq (peer_id, memory_id, op, payload, status, failure_class, last_error) VALUES ('peer-c', 'd2', 'upsert', '{}'::jsonb, 'quarantined', 'permanent', 'HTTP 400')`;
    for (const seq of [1, 2, 3]) await t.database.sql`INSERT INTO audit_log (seq, kind, prev_hash, payload_hash, hash, canonical, key_id, signature, event_id) VALUES (${seq}, 'test', 'p', 'h', ${`hash-${seq}`}, '{}', 'k', 's', ${`e-${seq}`})`;
    await t.database.sql`INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES (2, 'hash-2', '2026-12-03T10:00:00.000000Z', 'k', 's')`;
    const r = await report({ peers: [PEERS[0]!, { ...PEERS[1]!, paused: true }] });
    expect(r.peers.map((p) => [p.id, p.state])).toEqual([['peer-b', 'active'], ['peer-c', 'paused']]);
    expect(r.peers[1]!.dlq).toEqual({ pending: 1, quarantined: 1 });
    expect(r.peers[0]!.dlq).toEqual({ pending: 0, quarantined: 0 });
    expect(r.audit).toMatchObject({ headSeq: 3, headHash: 'hash-3', lastCheckpoint: { seq: 2, at: '2026-12-03T10:00:00.000000Z' } });
    expect(r.audit.uncheckpointedAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(r.nodeId).toBe('node-a');
  });

  it('still answers with peers and audit when the queues cannot be read', async () => {
    const r = await report({ queues: async () => Promise.reject(new Error('Connection is closed.')) });
    expect(r.queues).toBeNull();
    expect(r.queuesError).toBe('Connection is closed.');
    expect(r.peers).toHaveLength(2);
    // BullMQ waits for a Redis that is down for ever: the report does not.
    const hung = await report({ queues: () => new Promise(() => {}), queueTimeoutMs: 200 });
    expect(hung).toMatchObject({ queues: null, queuesError: 'no answer from Redis within 200 ms' });
    expect(hung.peers).toHaveLength(2);
  });

  it('answers within the timeout from a process whose Redis is down', async () => {
    const access = openQueueStatus('redis://127.0.0.1:1', uniquePrefix());
    const started = Date.now();
    const r = await report({ queues: access.source, queueTimeoutMs: 500 });
    await access.close();
    expect(r.queues).toBeNull();
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('reads waiting, delayed and failed jobs and the live workers of each queue from Redis', async () => {
    const prefix = uniquePrefix();
    const access = openQueueStatus(REDIS_URL, prefix);
    const conn = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const worker = new Worker('dlq', async () => {}, { connection: conn, prefix });
    try {
      const push = new Queue('push', { connection: conn, prefix });
      await push.add('a', {});
      await push.add('b', {}, { delay: 60_000 });
      await push.close();
      await worker.waitUntilReady();
      const byName = Object.fromEntries((await access.source()).map((q) => [q.name, q]));
      expect(Object.keys(byName).sort()).toEqual([...QUEUE_NAMES].sort());
      expect(byName.push).toEqual({ name: 'push', waiting: 1, active: 0, delayed: 1, failed: 0, workers: 0 });
      expect(byName.dlq!.workers).toBe(1);
    } finally {
      await worker.close();
      await access.close();
      conn.disconnect();
      await dropPrefix(prefix);
    }
  });
});
