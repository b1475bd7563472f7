import { unlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newNonce } from '../../src/federation/signing.js';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';
import { PrivateRedis } from '../helpers/private-redis.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

/*
 * Protocol edges a reviewer asks about first: dry runs, the nonce store failing closed,
 * un-enrolling a peer on a running node, a peer whose per-row results drift from the ids
 * sent, and the byte cap on outbound push requests.
 */

const count = async (n: TestNode) => {
  const [r] = await n.db.database.sql`SELECT (SELECT count(*) FROM memories)::int AS memories, (SELECT count(*) FROM change_feed)::int AS feed`;
  return r as { memories: number; feed: number };
};

describe('a receiving node', () => {
  let n: TestNode;
  let keyDir: string;
  let peer: FakePeer;
  let leaving: FakePeer;

  beforeAll(async () => {
    keyDir = newKeyDir();
    peer = await new FakePeer('peer-dry').init();
    leaving = await new FakePeer('peer-leaving').init();
    peer.enrolIn(keyDir);
    leaving.enrolIn(keyDir);
    n = await startTestNode({ id: 'edge-receiver', keyDir });
  });
  afterAll(async () => {
    await n?.destroy();
  });

  it('validates a dry_run push and reports per row, but applies nothing and writes no feed row', async () => {
    const kept = wireMemory({ title: 'stays' });
    expect((await send(n.url, peer.push({ sender_agent_id: 'peer-dry', memories: [kept] }))).json.applied).toBe(1);
    const before = await count(n);
    const fresh = wireMemory({ title: 'would be new' });
    const update = { ...kept, content: 'would overwrite', updated_at: '2026-02-01T00:00:00.000000+00:00' };
    const bad = wireMemory({ title: '' });
    const body = { sender_agent_id: 'peer-dry', recipient: 'edge-receiver', dry_run: true, memories: [fresh, update, bad], tombstones: [{ id: kept.id, deleted_at: '2026-03-01T00:00:00.000000+00:00' }] };
    const r = await send(n.url, peer.push(body));
    expect(r.status).toBe(200);
    // As upstream: each row that would be applied counts as noop (2 memories and the tombstone).
    expect(r.json).toMatchObject({ applied: 0, deleted: 0, noop: 3, skipped: 1, dry_run: true, receiver_agent_id: 'edge-receiver' });
    const statuses = r.json.results.map((x: { id: string; status: string }) => `${x.id === kept.id ? 'kept' : x.id === fresh.id ? 'fresh' : 'bad'}:${x.status}`).sort();
    expect(statuses).toEqual(['bad:skipped', 'fresh:noop', 'kept:noop', 'kept:noop']);
    expect(await count(n)).toEqual(before);
    expect((await api(n.url, 'GET', `/api/v1/memories/${fresh.id}`)).status).toBe(404);
    expect((await api(n.url, 'GET', `/api/v1/memories/${kept.id}`)).json.memory.content).toBe('hello');
    // The same body without dry_run does apply: the dry run was judged on rows that were valid.
    const real = await send(n.url, peer.push({ ...body, dry_run: false }));
    expect(real.json).toMatchObject({ applied: 2, deleted: 1, skipped: 1, dry_run: false });
    expect((await count(n)).feed).toBe(before.feed + 3);
  });

  it('never stores a row whose key differs from its document id (id drift), whatever the push', async () => {
    // A tombstone for an id never seen, then the memory itself, newer: the row takes the memory's document.
    const late = wireMemory({ updated_at: '2026-05-01T00:00:00.000000+00:00' });
    expect((await send(n.url, peer.push({ sender_agent_id: 'peer-dry', memories: [], tombstones: [{ id: late.id, deleted_at: '2026-04-01T00:00:00.000000+00:00' }] }))).json.deleted).toBe(1);
    expect((await send(n.url, peer.push({ sender_agent_id: 'peer-dry', memories: [late] }))).json.applied).toBe(1);
    // A row whose JSON names two ids: the parsed object has one, and row and document agree on it.
    const dup = JSON.stringify(wireMemory({ id: 'dup-first' })).replace(/}$/, ',"id":"dup-second"}');
    const raw = Buffer.from(`{"sender_agent_id":"peer-dry","memories":[${dup}]}`);
    const nonce = newNonce();
    const r = await fetch(`${n.url}/api/v1/sync/push`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-peer-id': 'peer-dry', 'x-memory-nonce': nonce, 'x-memory-sig': peer.signPost(raw, nonce) }, body: raw });
    expect(r.status).toBe(200);
    expect((await api(n.url, 'GET', '/api/v1/memories/dup-first')).status).toBe(404);
    expect((await api(n.url, 'GET', '/api/v1/memories/dup-second')).json.memory.id).toBe('dup-second');
    // A local update cannot re-key a memory either.
    const moved = await api(n.url, 'PUT', `/api/v1/memories/${late.id}`, { id: 'somewhere-else', content: 'x' });
    expect(moved).toMatchObject({ status: 400, json: { code: 'READ_ONLY_FIELD' } });
    const rows = await n.db.database.sql`SELECT id, doc->>'id' AS doc_id, deleted_at FROM memories WHERE id IN (${late.id as string}, 'dup-second')`;
    expect(rows.map((x) => [x.id, x.doc_id, x.deleted_at === null]).sort()).toEqual([['dup-second', 'dup-second', true], [late.id, late.id, true]].sort());
    // The fault checker's id-drift query, over every row this node holds.
    expect(await n.db.database.sql`SELECT id FROM memories WHERE doc->>'id' IS DISTINCT FROM id`).toEqual([]);
  });

  it('refuses a peer whose .pub was removed while the node runs, and accepts a re-enrolled key', async () => {
    const first = wireMemory({ title: 'while enrolled' });
    expect((await send(n.url, leaving.push({ sender_agent_id: 'peer-leaving', memories: [first] }))).status).toBe(200);
    unlinkSync(`${keyDir}/peer-leaving.pub`);
    // The key ring re-reads a changed key file within its short cache; wait for the refusal.
    const refused = await waitFor(async () => {
      const m = wireMemory({ title: 'after removal' });
      const r = await send(n.url, leaving.push({ sender_agent_id: 'peer-leaving', memories: [m] }));
      return r.status === 401 ? { r, m } : undefined;
    }, { timeoutMs: 10_000, intervalMs: 200, what: 'pushes refused once the key is removed' });
    expect(refused.r.json.error).toBe('x_memory_sig_no_enrolled_key');
    expect((await api(n.url, 'GET', `/api/v1/memories/${refused.m.id}`)).status).toBe(404);
    // Still refused on the next request (not a one-off), and audited.
    const again = wireMemory();
    expect((await send(n.url, leaving.push({ sender_agent_id: 'peer-leaving', memories: [again] }))).status).toBe(401);
    await waitFor(async () => {
      const rows = await n.db.database.sql`SELECT 1 FROM audit_log WHERE kind = 'federation.refused' AND canonical LIKE '%x_memory_sig_no_enrolled_key%' AND canonical LIKE '%peer-leaving%'`;
      return rows.length > 0;
    }, { what: 'refusal audited' });

    // Enrolled again with a new key: the old key's signatures fail, the new one's pass.
    const successor = await new FakePeer('peer-leaving').init();
    successor.enrolIn(keyDir);
    const ok = await waitFor(async () => {
      const m = wireMemory({ title: 'new key' });
      const r = await send(n.url, successor.push({ sender_agent_id: 'peer-leaving', memories: [m] }));
      return r.status === 200 ? m : undefined;
    }, { timeoutMs: 10_000, intervalMs: 200, what: 'the new key accepted' });
    expect((await api(n.url, 'GET', `/api/v1/memories/${ok.id}`)).status).toBe(200);
    const old = await send(n.url, leaving.push({ sender_agent_id: 'peer-leaving', memories: [wireMemory()] }));
    expect(old).toMatchObject({ status: 401, json: { error: 'x_memory_sig_bad_signature' } });
  });
});

describe('the nonce store (Redis) down', () => {
  let redis: PrivateRedis;
  let n: TestNode;
  let peer: FakePeer;

  beforeAll(async () => {
    redis = await new PrivateRedis().start();
    const keyDir = newKeyDir();
    peer = await new FakePeer('peer-n').init();
    peer.enrolIn(keyDir);
    n = await startTestNode({ id: 'nonce-node', keyDir, env: { REDIS_URL: redis.url } });
  });
  afterAll(async () => {
    await n?.destroy();
    await redis?.stop();
  });

  it('fails closed: a signed push gets 503 nonce_store_unavailable with Retry-After and is not applied', async () => {
    const before = wireMemory({ title: 'redis up' });
    expect((await send(n.url, peer.push({ sender_agent_id: 'peer-n', memories: [before] }))).status).toBe(200);
    await redis.stop();
    const m = wireMemory({ title: 'redis down' });
    const req = peer.push({ sender_agent_id: 'peer-n', memories: [m] });
    const res = await fetch(`${n.url}/api/v1/sync/push`, { method: 'POST', headers: req.headers, body: req.body });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(await res.json()).toEqual({ error: 'nonce_store_unavailable', code: 'NONCE_STORE_UNAVAILABLE' });
    expect((await api(n.url, 'GET', `/api/v1/memories/${m.id}`)).status).toBe(404);
    // A signed pull is refused the same way (it claims a nonce too).
    const nonce = newNonce();
    const pull = await fetch(`${n.url}/api/v1/sync/since?limit=5`, { headers: { 'x-peer-id': 'peer-n', 'x-memory-nonce': nonce, 'x-memory-sig': peer.signGet('/api/v1/sync/since', 'limit=5', nonce) } });
    expect(pull.status).toBe(503);
    expect(((await pull.json()) as { error: string }).error).toBe('nonce_store_unavailable');
    await redis.start();
    // Probe with fresh nonces until the node uses Redis again (a probe that times out while
    // Redis reconnects may still claim its nonce later, so never probe with `req` itself).
    await waitFor(async () => (await send(n.url, peer.push({ sender_agent_id: 'peer-n', memories: [wireMemory({ title: 'probe' })] }))).status === 200 || undefined, {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: 'pushes accepted after Redis returns',
    });
    // The same request, retried once Redis is back, is applied: its nonce was never claimed.
    const retried = await fetch(`${n.url}/api/v1/sync/push`, { method: 'POST', headers: req.headers, body: req.body });
    expect({ status: retried.status, body: retried.status === 200 ? null : await retried.text() }).toEqual({ status: 200, body: null });
    expect((await api(n.url, 'GET', `/api/v1/memories/${m.id}`)).json.memory.title).toBe('redis down');
  });
});

describe('a peer whose results drift from the ids sent', () => {
  let n: TestNode;
  let upstream: UpstreamReceiver;

  beforeAll(async () => {
    const keyDir = newKeyDir();
    upstream = await new UpstreamReceiver('drifter', keyDir).start();
    n = await startTestNode({ id: 'drift-sender', keyDir, peers: [{ id: 'drifter', url: upstream.url }], env: { FED_QUORUM_W: '2' } });
  });
  afterAll(async () => {
    await n?.destroy();
    await upstream?.stop();
  });

  it('dead-letters the row as id_drift, does not count it as an ack, and keeps delivering', async () => {
    upstream.driftIds.add('drift-row-1');
    const r = await api(n.url, 'POST', '/api/v1/memories', { id: 'drift-row-1', title: 'drifts', content: 'x' });
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({ error: 'quorum_not_met', id: 'drift-row-1' });
    const dlq = await waitFor(async () => {
      const rows = await n.db.database.sql`SELECT memory_id, failure_class, last_error, status FROM federation_push_dlq WHERE peer_id = 'drifter'`;
      return rows.length ? rows : undefined;
    }, { what: 'DLQ row' });
    expect(dlq).toHaveLength(1);
    expect(dlq[0]).toMatchObject({ memory_id: 'drift-row-1', failure_class: 'id_drift', status: 'pending' });
    expect(dlq[0]!.last_error).toContain('peer reported no result for this id');
    // The cursor moved past it: the next write is acked by the same peer.
    const next = await api(n.url, 'POST', '/api/v1/memories', { title: 'after drift', content: 'x' });
    expect(next.status).toBe(201);
    expect(next.json.quorum_acks).toBe(2);
    expect(upstream.received.has(next.json.id)).toBe(true);
  });
});

describe('PUSH_BATCH_MAX_BYTES', () => {
  const CAP = 64 * 1024;
  let apiNode: TestNode;
  let worker: TestNode | undefined;
  let upstream: UpstreamReceiver;
  let keyDir: string;
  const peer = { id: 'byte-peer', url: '' };

  beforeAll(async () => {
    keyDir = newKeyDir();
    upstream = await new UpstreamReceiver('byte-peer', keyDir).start();
    peer.url = upstream.url;
    // API only: the backlog builds up with no worker to deliver it.
    apiNode = await startTestNode({ id: 'byte-sender', role: 'api', keyDir, peers: [peer], env: { PUSH_BATCH_MAX_BYTES: String(CAP) } });
  });
  afterAll(async () => {
    await worker?.stop();
    await apiNode?.destroy();
    await upstream?.stop();
  });

  it('sends a backlog larger than the cap in several requests, each body within the cap', async () => {
    // 12 memories of ~15 KB, and 300 tombstones with 128-character ids (from another peer).
    const big = await api(apiNode.url, 'POST', '/api/v1/memories/bulk', Array.from({ length: 12 }, (_, i) => ({ title: `big ${i}`, content: `${i}`.padEnd(15_000, 'x') })));
    expect(big.json.created).toBe(12);
    const other = await new FakePeer('tomb-peer').init();
    other.enrolIn(keyDir);
    const tombIds = Array.from({ length: 300 }, (_, i) => `t${String(i).padStart(3, '0')}`.padEnd(128, 'z'));
    const tombs = await send(apiNode.url, other.push({ sender_agent_id: 'tomb-peer', memories: [], tombstones: tombIds.map((id) => ({ id, deleted_at: '2026-01-01T00:00:00.000000+00:00' })) }));
    expect(tombs.json.deleted).toBe(300);
    expect(upstream.pushBodyBytes).toHaveLength(0);

    worker = await startTestNode({ id: 'byte-sender', role: 'worker', keyDir, peers: [peer], db: apiNode.db, prefix: apiNode.prefix, env: { PUSH_BATCH_MAX_BYTES: String(CAP) } });
    await waitFor(async () => upstream.received.size === 12 && tombIds.every((id) => upstream.deleted.has(id)), { timeoutMs: 30_000, what: 'backlog delivered' });
    const sizes = upstream.pushBodyBytes;
    const total = sizes.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(3 * CAP);
    for (const s of sizes) expect(s, `push bodies: ${sizes.join(', ')}`).toBeLessThanOrEqual(CAP);
    expect(sizes.length).toBeGreaterThanOrEqual(Math.ceil(total / CAP));
    // Nothing was sent twice (no request was refused and retried).
    expect([...upstream.deliveries.values()].every((d) => d === 1)).toBe(true);
  });
});
