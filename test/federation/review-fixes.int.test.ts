import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { validateMemory } from '../../src/memory/model.js';
import { deadLetter, leaseReplayable, markReplayed } from '../../src/store/dlq.js';
import { applyReplicated } from '../../src/store/replica.js';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

describe('a governed receiver', () => {
  let n: TestNode;
  let peer: FakePeer;
  beforeAll(async () => {
    const keyDir = newKeyDir();
    peer = await new FakePeer('peer-g').init();
    peer.enrolIn(keyDir);
    n = await startTestNode({ id: 'governed', keyDir, env: { GOVERNANCE_POLICY: JSON.stringify({ peer_namespaces: { 'peer-g': ['shared/**'] } }) } });
  });
  afterAll(async () => {
    await n?.destroy();
  });

  it('refuses a peer\'s deletion of a memory in a namespace it may not write', async () => {
    const c = await api(n.url, 'POST', '/api/v1/memories', { id: 'guarded-1', title: 'mine', content: 'x', namespace: 'private/notes' });
    expect(c.status).toBe(201);
    const r = await send(n.url, peer.push({ sender_agent_id: 'peer-g', memories: [], tombstones: [{ id: 'guarded-1', deleted_at: '2026-11-22T00:00:00Z' }], deletions: ['guarded-1'] }));
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ deleted: 0, skipped: 1 });
    expect(r.json.results[0].reason).toMatch(/^GOVERNANCE_PEER_NAMESPACE/);
    expect((await api(n.url, 'GET', '/api/v1/memories/guarded-1')).status).toBe(200);
  });

  it('refuses rows stamped in the future, one row at a time', async () => {
    const future = wireMemory({ id: 'from-3000', namespace: 'shared/x', updated_at: '3000-01-01T00:00:00.000001+00:00' });
    const fine = wireMemory({ id: 'fine-1', namespace: 'shared/x' });
    const r = await send(n.url, peer.push({ sender_agent_id: 'peer-g', memories: [future, fine] }));
    expect(r.json).toMatchObject({ applied: 1, skipped: 1 });
    expect(r.json.results.find((x: { id: string }) => x.id === 'from-3000').reason).toMatch(/^FUTURE_TIMESTAMP/);
  });

  it('skips a bad row in a push instead of refusing the whole batch', async () => {
    const body = `{"sender_agent_id":"peer-g","memories":[${JSON.stringify(wireMemory({ id: 'good-row', namespace: 'shared/x' }))},${JSON.stringify(wireMemory({ id: 'nul-row', namespace: 'shared/x' })).replace('"hello"', '"he\\u0000llo"')}]}`;
    const req = peer.push({});
    req.body = Buffer.from(body);
    req.headers['x-memory-sig'] = peer.signPost(req.body, req.headers['x-memory-nonce']!);
    const r = await send(n.url, req);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ applied: 1, skipped: 1 });
  });

  it('answers a stranger\'s push without reading its body', async () => {
    const res = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: n.port, method: 'POST', path: '/api/v1/sync/push', headers: { 'x-peer-id': 'nobody', 'content-length': String(40 * 1024 * 1024), 'content-type': 'application/json' } }, (r) => {
        resolve(r.statusCode ?? 0);
        r.resume();
        req.destroy();
      });
      req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
      req.write('{"sender_agent_id":"nobody","memories":['); // and never the other 40 MiB
    });
    expect(res).toBe(401);
  });
});

describe('quorum and refusals', () => {
  let n: TestNode;
  let upstream: UpstreamReceiver;
  beforeAll(async () => {
    const keyDir = newKeyDir();
    upstream = await new UpstreamReceiver('peer-q', keyDir).start();
    n = await startTestNode({ id: 'quorate', keyDir, peers: [{ id: 'peer-q', url: upstream.url }], env: { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '1500' } });
  });
  afterAll(async () => {
    await n?.destroy();
    await upstream?.stop();
  });

  it('a row the peer refused is not an ack: 503 quorum_not_met, the row in the DLQ', async () => {
    upstream.refuse.add('refused-q');
    const r = await api(n.url, 'POST', '/api/v1/memories', { id: 'refused-q', title: 'no', content: 'x' });
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({ error: 'quorum_not_met', got: 1, needed: 2 });
    const ok = await api(n.url, 'POST', '/api/v1/memories', { title: 'yes', content: 'x' });
    expect(ok.status).toBe(201);
    expect(ok.json.quorum_acks).toBe(2);
  });
});

describe('catch-up of large memories', () => {
  let source: TestNode, puller: TestNode;
  afterAll(async () => {
    await puller?.destroy();
    await source?.destroy();
  });

  it('pulls pages whose 500 rows would exceed what a puller accepts', async () => {
    const keyDir = newKeyDir();
    await ensureOwnKey(keyDir, 'big-source');
    await ensureOwnKey(keyDir, 'big-puller');
    source = await startTestNode({ id: 'big-source', keyDir });
    const big = 'x'.repeat(60_000);
    const rows = Array.from({ length: 200 }, (_, i) => validateMemory(wireMemory({ id: `big-${i}`, content: `${i}${big}` })));
    await applyReplicated(source.db.database.db, { memories: rows, tombstones: [], originPeer: null });
    puller = await startTestNode({ id: 'big-puller', keyDir, peers: [{ id: 'big-source', url: source.url }], env: { CATCHUP_INTERVAL_MS: '500' } });
    await waitFor(async () => Number((await puller.db.database.sql`SELECT count(*)::int AS n FROM memories`)[0]!.n) === 200, { timeoutMs: 60_000, what: '12 MB pulled in pages' });
  });
});

describe('DLQ lease race', () => {
  let n: TestNode;
  afterAll(async () => {
    await n?.destroy();
  });

  it('a newer refusal arriving under a replayer\'s lease is not marked replayed by it', async () => {
    n = await startTestNode({ id: 'dlq-race' });
    const db = n.db.database.db;
    await deadLetter(db, [{ peerId: 'p', memoryId: 'm1', op: 'upsert', payload: { v: 1 }, failureClass: 'skipped', error: 'refused S1' }]);
    const [row] = await leaseReplayable(db, ['p'], 10, 'replayer-1', 60_000);
    expect(row).toBeDefined();
    await deadLetter(db, [{ peerId: 'p', memoryId: 'm1', op: 'upsert', payload: { v: 2 }, failureClass: 'skipped', error: 'refused S2' }]);
    expect(await markReplayed(db, [row!.id], 'replayer-1')).toBe(0);
    const [after] = await n.db.database.sql`SELECT status, payload, last_error FROM federation_push_dlq WHERE id = ${row!.id}`;
    expect(after).toMatchObject({ status: 'pending', payload: { v: 2 }, last_error: 'refused S2' });
  });
});
