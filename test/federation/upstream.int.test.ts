import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_URL, waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

let n: TestNode;
let upstream: UpstreamReceiver;
let sender: FakePeer;

beforeAll(async () => {
  const keyDir = newKeyDir();
  upstream = await new UpstreamReceiver('ai-memory-1', keyDir).start();
  sender = await new FakePeer('ai-memory-1').init();
  sender.enrolIn(keyDir);
  // A generous ack timeout: no test here measures it, and on a loaded machine a push round
  // trip can take seconds; a short one turns load into 503s (a timed pass/fail).
  n = await startTestNode({ id: 'memfed-1', keyDir, peers: [{ id: 'ai-memory-1', url: upstream.url }], env: { FED_QUORUM_W: '2', PUSH_BATCH_MAX: '50', FED_ACK_TIMEOUT_MS: '15000' } });
});
afterAll(async () => {
  await n?.destroy();
  await upstream?.stop();
});

const PEER = 'ai-memory-1';
type Pos = { txid: string; seq: string };
const cursor = async (): Promise<Pos & { cls: string | null }> => {
  const [c] = await n.db.database.sql`SELECT txid::text AS txid, seq::text AS seq, last_error_class AS cls FROM peer_cursors WHERE peer_id = ${PEER}`;
  return { txid: c!.txid, seq: c!.seq, cls: c!.cls };
};
/** The feed position of the last change of `id` on the node. */
const lastChange = async (id: string): Promise<Pos> => {
  const [f] = await n.db.database.sql`SELECT txid::text AS txid, seq::text AS seq FROM change_feed WHERE memory_id = ${id} ORDER BY txid DESC, seq DESC LIMIT 1`;
  return { txid: f!.txid, seq: f!.seq };
};
const before = (a: Pos, b: Pos) => BigInt(a.txid) < BigInt(b.txid) || (a.txid === b.txid && BigInt(a.seq) < BigInt(b.seq));

describe('interop with an ai-memory-style peer', () => {
  it('delivers writes to an upstream receiver and counts its ack toward the quorum', async () => {
    const r = await api(n.url, 'POST', '/api/v1/memories', { title: 'to upstream', content: 'x' });
    expect(r.status).toBe(201);
    expect(r.json.quorum_acks).toBe(2);
    expect(upstream.received.get(r.json.id)).toMatchObject({ title: 'to upstream', updated_at: expect.stringMatching(/\+00:00$/) });
  });

  it('isolates the one row an upstream peer refuses (skipped counter, no results) into the DLQ', async () => {
    const poison = 'poison-row-1';
    upstream.refuse.add(poison);
    const ids: string[] = [];
    const items = Array.from({ length: 30 }, (_, i) => (i === 17 ? { id: poison, title: 'poison', content: 'x' } : { title: `ok ${i}`, content: 'x' }));
    const bulk = await api(n.url, 'POST', '/api/v1/memories/bulk', items);
    expect(bulk.json.created).toBe(30);
    ids.push(...bulk.json.ids.filter((id: string) => id !== poison));
    await waitFor(async () => ids.every((id) => upstream.received.has(id)), { what: 'all good rows delivered' });
    const dlq = await waitFor(async () => {
      const rows = await n.db.database.sql`SELECT memory_id, failure_class, status FROM federation_push_dlq WHERE peer_id = 'ai-memory-1'`;
      return rows.length ? rows : undefined;
    });
    expect(dlq.map((r) => r.memory_id)).toEqual([poison]);
    expect(dlq[0]).toMatchObject({ failure_class: 'skipped', status: 'pending' });
    expect(upstream.received.has(poison)).toBe(false);
    // the cursor moved past the poison row: later writes still flow
    const after = await api(n.url, 'POST', '/api/v1/memories', { title: 'after poison', content: 'x' });
    expect(after.status).toBe(201);
    expect(upstream.received.has(after.json.id)).toBe(true);
  });

  it('sends deletions as upstream ids (plus memfed tombstones)', async () => {
    const r = await api(n.url, 'POST', '/api/v1/memories', { title: 'doomed', content: 'x' });
    const d = await api(n.url, 'DELETE', `/api/v1/memories/${r.json.id}`);
    expect(d.status).toBe(200);
    expect(upstream.deleted.has(r.json.id)).toBe(true);
  });

  it('accepts what an upstream sender pushes: one memory per request, bare-UUID nonce, Idempotency-Key', async () => {
    const m = wireMemory({ id: randomUUID(), title: 'from upstream' });
    const req = sender.push({ sender_agent_id: 'ai-memory-1', memories: [m] }, { bareNonce: true });
    req.headers['idempotency-key'] = String(m.id);
    const res = await send(n.url, req);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ applied: 1, skipped: 0, receiver_agent_id: 'memfed-1' });
    expect((await api(n.url, 'GET', `/api/v1/memories/${m.id}`)).json.memory.title).toBe('from upstream');
    // upstream deletions carry no timestamp: they delete now
    const del = sender.push({ sender_agent_id: 'ai-memory-1', memories: [], deletions: [m.id] }, { bareNonce: true });
    expect((await send(n.url, del)).json.deleted).toBe(1);
    expect((await api(n.url, 'GET', `/api/v1/memories/${m.id}`)).status).toBe(404);
    // and the applied row is not echoed back to the peer it came from: once the cursor
    // for that peer is past both changes, their pushes (if any) have been made.
    const last = await lastChange(String(m.id));
    await waitFor(async () => !before(await cursor(), last), { what: 'cursor past the applied changes' });
    expect(upstream.received.has(String(m.id))).toBe(false);
    expect(upstream.deleted.has(String(m.id))).toBe(false);
  });

  it('a time-less deletion of an id never stored here leaves no tombstone: a later create of that id succeeds', async () => {
    const id = `never-held-${randomUUID()}`;
    const del = await send(n.url, sender.push({ sender_agent_id: 'ai-memory-1', memories: [], deletions: [id] }, { bareNonce: true }));
    expect(del.status).toBe(200);
    expect(del.json.deleted).toBe(0);
    expect(await n.db.database.sql`SELECT id FROM memories WHERE id = ${id}`).toHaveLength(0);
    const created = await api(n.url, 'POST', '/api/v1/memories', { id, title: 'created after', content: 'x' });
    expect(created.status).toBe(201);
  });

  it('a time-less deletion signed before a newer version was written does not delete it', async () => {
    const sentAt = Date.now() - 60_000;
    const m = wireMemory({ id: `rewritten-${randomUUID()}`, title: 'rewritten after the deletion was sent', updated_at: new Date(sentAt + 30_000).toISOString().replace('Z', '000+00:00') });
    expect((await send(n.url, sender.push({ sender_agent_id: 'ai-memory-1', memories: [m] }, { bareNonce: true }))).json.applied).toBe(1);
    // Signed a minute ago (inside the clock window), delivered only now.
    const late = sender.push({ sender_agent_id: 'ai-memory-1', memories: [], deletions: [m.id] }, { nonce: `${sentAt}.${randomUUID()}` });
    const res = await send(n.url, late);
    expect(res.status).toBe(200);
    expect(res.json.deleted).toBe(0);
    expect((await api(n.url, 'GET', `/api/v1/memories/${m.id}`)).status).toBe(200);
  });

  it('refuses a captured bare-nonce deletion replayed to the node, whatever process receives it', async () => {
    const m = wireMemory({ id: `replayed-${randomUUID()}`, updated_at: new Date(Date.now() - 120_000).toISOString().replace('Z', '000+00:00') });
    expect((await send(n.url, sender.push({ sender_agent_id: 'ai-memory-1', memories: [m] }, { bareNonce: true }))).json.applied).toBe(1);
    const captured = sender.push({ sender_agent_id: 'ai-memory-1', memories: [], deletions: [m.id] }, { bareNonce: true });
    expect((await send(n.url, captured)).json.deleted).toBe(1);
    // The peer writes the memory again; the captured deletion is replayed.
    const again = { ...m, title: 'written again', updated_at: new Date().toISOString().replace('Z', '000+00:00') };
    expect((await send(n.url, sender.push({ sender_agent_id: 'ai-memory-1', memories: [again] }, { bareNonce: true }))).json.applied).toBe(1);
    const replay = await send(n.url, captured);
    expect(replay.status).toBe(401);
    expect(replay.json.error).toBe('x_memory_nonce_replay');
    // The refusal comes from Redis, which every API process (and a restarted one) shares.
    const r = new Redis(REDIS_URL);
    const keys = await r.keys(`${n.prefix}:nonce-bare:*`);
    r.disconnect();
    expect(keys.length).toBeGreaterThan(0);
    expect((await api(n.url, 'GET', `/api/v1/memories/${m.id}`)).json.memory.title).toBe('written again');
  });

  it('classifies failures: 503 with Retry-After retries without moving the cursor, 429 never burns attempts', async () => {
    const conn = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const q = new Queue('push', { connection: conn, prefix: n.prefix });
    const pushJob = async () => (await q.getJobs(['delayed', 'waiting', 'active'], 0, 50)).find((j) => j.data.peerId === PEER);
    try {
      upstream.failWith = { status: 503, headers: { 'retry-after': '1' } };
      const r = await api(n.url, 'POST', '/api/v1/memories', { title: 'during 503', content: 'x' });
      expect(r.status).toBe(503);
      expect(r.json.reason).toBe('unreachable');
      const write = await lastChange(r.json.id);
      expect((await cursor()).cls).toBe('transient');
      const held = await cursor();
      expect(before(held, write)).toBe(true);
      // Retried (Retry-After 1 s) and failed again: the cursor has not moved.
      const at503 = upstream.requests;
      await waitFor(async () => upstream.requests >= at503 + 2, { timeoutMs: 15_000, what: 'the 503 retried twice' });
      expect(await cursor()).toMatchObject({ txid: held.txid, seq: held.seq, cls: 'transient' });

      upstream.failWith = { status: 429, headers: { 'retry-after': '1' } };
      await waitFor(async () => (await cursor()).cls === 'throttle', { what: 'throttle recorded' });
      const job = await waitFor(pushJob, { what: 'the throttled push job' });
      const attempts = job.attemptsMade;
      const at429 = upstream.requests;
      // Several throttles in a row: the same job, no attempt used, the cursor still put.
      await waitFor(async () => upstream.requests >= at429 + 3, { timeoutMs: 15_000, what: 'three more throttled tries' });
      const later = await waitFor(pushJob, { what: 'the push job still there' });
      expect(later.id).toBe(job.id);
      expect(later.attemptsMade).toBe(attempts);
      expect(await cursor()).toMatchObject({ txid: held.txid, seq: held.seq, cls: 'throttle' });

      upstream.failWith = null;
      await waitFor(async () => upstream.received.has(r.json.id), { timeoutMs: 20_000, what: 'delivered after recovery' });
      await waitFor(async () => !before(await cursor(), write), { what: 'cursor past the write' });
      expect((await cursor()).cls).toBeNull();
      const dlq = await n.db.database.sql`SELECT count(*)::int AS n FROM federation_push_dlq WHERE memory_id = ${r.json.id}`;
      expect(dlq[0]!.n).toBe(0);
    } finally {
      upstream.failWith = null;
      await q.close();
      conn.disconnect();
    }
  });
});
