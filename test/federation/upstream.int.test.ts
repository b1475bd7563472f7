import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
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
  n = await startTestNode({ id: 'memfed-1', keyDir, peers: [{ id: 'ai-memory-1', url: upstream.url }], env: { FED_QUORUM_W: '2', PUSH_BATCH_MAX: '50' } });
});
afterAll(async () => {
  await n?.destroy();
  await upstream?.stop();
});

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
    // and the applied row is not echoed back to the peer it came from
    await new Promise((r) => setTimeout(r, 800));
    expect(upstream.received.has(String(m.id))).toBe(false);
    expect(upstream.deleted.has(String(m.id))).toBe(false);
  });

  it('classifies failures: 503 with Retry-After retries without moving the cursor, 429 never burns attempts', async () => {
    upstream.failWith = { status: 503, headers: { 'retry-after': '1' } };
    const r = await api(n.url, 'POST', '/api/v1/memories', { title: 'during 503', content: 'x' });
    expect(r.status).toBe(503);
    expect(r.json.reason).toBe('unreachable');
    const [cur] = await n.db.database.sql`SELECT last_error_class FROM peer_cursors WHERE peer_id = 'ai-memory-1'`;
    expect(cur!.last_error_class).toBe('transient');
    upstream.failWith = { status: 429, headers: { 'retry-after': '1' } };
    await waitFor(async () => (await n.db.database.sql`SELECT last_error_class FROM peer_cursors WHERE peer_id = 'ai-memory-1'`)[0]!.last_error_class === 'throttle', { what: 'throttle recorded' });
    upstream.failWith = null;
    await waitFor(async () => upstream.received.has(r.json.id), { timeoutMs: 20_000, what: 'delivered after recovery' });
    const dlq = await n.db.database.sql`SELECT count(*)::int AS n FROM federation_push_dlq WHERE memory_id = ${r.json.id}`;
    expect(dlq[0]!.n).toBe(0);
  });
});
