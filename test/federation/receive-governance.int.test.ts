import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';

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
    expect((await api(n.url, 'GET', '/api/v1/memories/from-3000')).status).toBe(404);
    expect((await api(n.url, 'GET', '/api/v1/memories/fine-1')).status).toBe(200);
  });

  it('skips a bad row in a push instead of refusing the whole batch', async () => {
    const body = `{"sender_agent_id":"peer-g","memories":[${JSON.stringify(wireMemory({ id: 'good-row', namespace: 'shared/x' }))},${JSON.stringify(wireMemory({ id: 'nul-row', namespace: 'shared/x' })).replace('"hello"', '"he\\u0000llo"')}]}`;
    const req = peer.push({});
    req.body = Buffer.from(body);
    req.headers['x-memory-sig'] = peer.signPost(req.body, req.headers['x-memory-nonce']!);
    const r = await send(n.url, req);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ applied: 1, skipped: 1 });
    expect(r.json.results).toEqual(expect.arrayContaining([expect.objectContaining({ id: 'nul-row', status: 'skipped' }), expect.objectContaining({ id: 'good-row', status: 'applied' })]));
    expect((await api(n.url, 'GET', '/api/v1/memories/good-row')).status).toBe(200);
    expect((await api(n.url, 'GET', '/api/v1/memories/nul-row')).status).toBe(404);
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
