import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';

/*
 * The peers admin API (/api/v1/admin/peers) on a real node: input checked with stable
 * codes and nothing changed on a refusal; each change in effect for the node's inbound
 * authentication within seconds (the node's own peer directory); each change audited;
 * FED_PEERS seeds the table once, so a runtime change survives a restart.
 */
let n: TestNode;
const keyDir = newKeyDir();
const TOKEN = 'peers-admin';
const admin = (method: string, p: string, body?: unknown) => api(n.url, method, `/api/v1/admin/peers${p}`, body, { authorization: `Bearer ${TOKEN}` });
const list = async () => (await admin('GET', '')).json.peers as Array<Record<string, unknown>>;
const chain = async () => (await n.db.database.sql<{ kind: string; canonical: string }[]>`SELECT kind, canonical FROM audit_log ORDER BY seq`).map((e) => ({ kind: e.kind, ...JSON.parse(e.canonical) }));
const start = (db?: TestNode['db']) =>
  startTestNode({ id: 'peers-node', role: 'all', keyDir, peers: [{ id: 'seed-peer', url: 'http://127.0.0.1:9' }], env: { ADMIN_TOKEN: TOKEN }, ...(db ? { db } : {}) });
// A push from `peer`, signed with its key: accepted (200) or refused with a tag.
const pushAs = (peer: FakePeer) => send(n.url, peer.push({ sender_agent_id: peer.id, memories: [wireMemory()] }));
const follow = () => new Promise((r) => setTimeout(r, 2_500));

beforeAll(async () => {
  n = await start();
});
afterAll(async () => {
  await n?.destroy();
});

describe('admin peers API', () => {
  it('lists the peers FED_PEERS seeded, active, and needs ADMIN_TOKEN', async () => {
    expect(await list()).toEqual([expect.objectContaining({ id: 'seed-peer', url: 'http://127.0.0.1:9', flavour: 'memfed', state: 'active', source: 'fed_peers', public_key: null, key_id: null })]);
    expect((await api(n.url, 'GET', '/api/v1/admin/peers')).status).toBe(401);
    expect((await api(n.url, 'POST', '/api/v1/admin/peers', { id: 'x', url: 'http://h' })).status).toBe(401);
  });

  it('refuses bad input with a stable code and changes nothing', async () => {
    const before = await list();
    const cases: Array<[string, string, unknown, number, string]> = [
      ['POST', '', { url: 'http://h' }, 400, 'INVALID_PEER'],
      ['POST', '', { id: 'a/b', url: 'http://h' }, 400, 'INVALID_PEER'],
      ['POST', '', { id: 'p1', url: 'ftp://h' }, 400, 'INVALID_PEER'],
      ['POST', '', { id: 'p1', url: 'http://h', flavour: 'bogus' }, 400, 'INVALID_PEER'],
      ['POST', '', { id: 'p1', url: 42 }, 400, 'INVALID_PEER'],
      ['POST', '', { id: 'peers-node', url: 'http://h' }, 400, 'INVALID_PEER'],
      ['POST', '', { id: 'p1', url: 'http://h', key: 'not base64!' }, 400, 'INVALID_KEY'],
      ['POST', '', { id: 'p1', url: 'http://h', key: Buffer.alloc(31, 1).toString('base64') }, 400, 'INVALID_KEY'],
      ['POST', '', [1, 2], 400, 'INVALID_BODY'],
      ['POST', '', { id: 'seed-peer', url: 'http://h' }, 409, 'PEER_EXISTS'],
      ['POST', '/nosuch/pause', undefined, 404, 'UNKNOWN_PEER'],
      ['POST', '/nosuch/resume', undefined, 404, 'UNKNOWN_PEER'],
      ['DELETE', '/nosuch', undefined, 404, 'UNKNOWN_PEER'],
      ['GET', '/nosuch', undefined, 404, 'UNKNOWN_PEER'],
      ['PUT', '/seed-peer/key', { key: 'AAAA' }, 400, 'INVALID_KEY'],
      ['PUT', '/seed-peer/key', {}, 400, 'INVALID_KEY'],
      ['POST', '/seed-peer/purge', undefined, 409, 'PEER_NOT_REMOVED'],
      ['PATCH', '/seed-peer', {}, 400, 'INVALID_PEER'],
      ['PATCH', '/seed-peer', { flavour: 'bogus' }, 400, 'INVALID_PEER'],
      ['PATCH', '/seed-peer', { url: 'ftp://h' }, 400, 'INVALID_PEER'],
      ['PATCH', '/nosuch', { url: 'http://h' }, 404, 'UNKNOWN_PEER'],
    ];
    for (const [method, p, body, status, code] of cases) {
      const r = await admin(method, p, body);
      expect({ method, p, body, status: r.status, code: r.json?.code }).toEqual({ method, p, body, status, code });
    }
    expect(await list()).toEqual(before);
  });

  it('enrols a peer by its base64 key, in effect at once; pause keeps its pushes accepted; re-key and remove are too; each change audited', async () => {
    const p = await new FakePeer('runtime-peer').init();
    // Not enrolled yet (no key file, no row): refused.
    expect((await pushAs(p)).status).toBe(401);
    const added = await admin('POST', '', { id: 'runtime-peer', url: 'http://127.0.0.1:9/', key: Buffer.from(p.pub).toString('base64') });
    expect(added.status).toBe(201);
    expect(added.json.peer).toMatchObject({ id: 'runtime-peer', url: 'http://127.0.0.1:9', state: 'active', source: 'operator', public_key: Buffer.from(p.pub).toString('base64') });
    await waitFor(async () => (await pushAs(p)).status === 200, { what: 'the enrolled key accepted', timeoutMs: 10_000 });

    expect((await admin('POST', '/runtime-peer/pause')).json).toMatchObject({ changed: true, peer: { state: 'paused' } });
    expect((await admin('POST', '/runtime-peer/pause')).json).toMatchObject({ changed: false, peer: { state: 'paused' } });
    expect((await pushAs(p)).status).toBe(200);
    expect((await admin('POST', '/runtime-peer/resume')).json).toMatchObject({ changed: true, peer: { state: 'active' } });
    expect((await admin('PATCH', '/runtime-peer', { flavour: 'ai-memory-0.7' })).json).toMatchObject({ changed: true, peer: { flavour: 'ai-memory-0.7', url: 'http://127.0.0.1:9', state: 'active' } });
    expect((await admin('PATCH', '/runtime-peer', { flavour: 'ai-memory-0.7' })).json).toMatchObject({ changed: false });

    const next = await new FakePeer('runtime-peer').init();
    const rekey = await admin('PUT', '/runtime-peer/key', { key: Buffer.from(next.pub).toString('base64') });
    expect(rekey.json).toMatchObject({ changed: true });
    await follow();
    expect((await pushAs(p)).json.error).toBe('x_memory_sig_bad_signature');
    expect((await pushAs(next)).status).toBe(200);

    expect((await admin('DELETE', '/runtime-peer')).json).toMatchObject({ changed: true, peer: { state: 'removed' } });
    await follow();
    expect(await pushAs(next)).toMatchObject({ status: 403, json: { error: 'peer_removed', code: 'PEER_REMOVED' } });
    expect((await admin('POST', '/runtime-peer/resume')).json.code).toBe('PEER_REMOVED');
    // Its cursor (and pull watermark, from the pulls tried while it was active) are kept; purge forgets them (the peer row stays, removed).
    const stateRows = async () => Number((await n.db.database.sql`SELECT (SELECT count(*) FROM peer_cursors WHERE peer_id = 'runtime-peer') + (SELECT count(*) FROM peer_watermarks WHERE peer_id = 'runtime-peer') AS n`)[0]!.n);
    await n.db.database.sql`INSERT INTO peer_cursors (peer_id) VALUES ('runtime-peer') ON CONFLICT DO NOTHING`;
    expect((await admin('POST', '/runtime-peer/purge')).json).toMatchObject({ purged: { cursor: true } });
    expect(await stateRows()).toBe(0);
    expect((await admin('GET', '/runtime-peer')).json.peer.state).toBe('removed');

    const kinds = async () => (await chain()).filter((e) => (e.kind === 'peer.changed' || e.kind === 'key.changed') && e.subject === 'runtime-peer').map((e) => `${e.kind}:${e.details.action}`);
    await waitFor(async () => (await kinds()).length >= 9, { what: 'peer changes in the chain', timeoutMs: 20_000 });
    expect(await kinds()).toEqual(['peer.changed:added', 'key.changed:peer_rekeyed', 'peer.changed:paused', 'peer.changed:resumed', 'peer.changed:updated', 'peer.changed:rekeyed', 'key.changed:peer_rekeyed', 'peer.changed:removed', 'peer.changed:purged']);
  });

  it('FED_PEERS seeds only missing rows: a pause made at runtime survives a restart with the same FED_PEERS', async () => {
    expect((await admin('POST', '/seed-peer/pause')).status).toBe(200);
    const db = n.db;
    await n.stop();
    n = await start(db);
    expect((await list()).find((p) => p.id === 'seed-peer')).toMatchObject({ state: 'paused', source: 'fed_peers' });
    expect((await list()).find((p) => p.id === 'runtime-peer')).toMatchObject({ state: 'removed' });
  });
});
