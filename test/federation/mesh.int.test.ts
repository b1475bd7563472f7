import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { startMesh } from '../helpers/mesh.js';
import { api, newKeyDir, type TestNode } from '../helpers/node.js';
import { FakePeer, send } from '../helpers/peer.js';

let nodes: TestNode[];
let keyDir: string;
beforeAll(async () => {
  keyDir = newKeyDir();
  // A generous ack timeout: no test here measures it, and on a loaded machine a push round
  // trip can take seconds; a short one turns load into 503s (a timed pass/fail).
  nodes = await startMesh(3, { keyDir, env: { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '15000' } });
});
afterAll(async () => {
  await Promise.all((nodes ?? []).map((n) => n.destroy()));
});

/** Signs pushes as mesh node `id` itself (its real key), as a late push from it would be. */
const asNode = (id: string) => new FakePeer(id, readFileSync(path.join(keyDir, `${id}.priv`))).init();

const feedRows = async (n: TestNode, id: string) => Number((await n.db.database.sql`SELECT count(*)::int AS n FROM change_feed WHERE memory_id = ${id}`)[0]!.n);

/**
 * Every node has delivered every change of `id` it holds to every peer: each peer cursor
 * is at or past the id's last feed row. After this no push concerning `id` is pending,
 * so counting rows is final (no sleep needed to let a late echo arrive).
 */
const settled = async (id: string) => {
  for (const n of nodes) {
    const [r] = await n.db.database.sql`
      SELECT (SELECT count(*)::int FROM peer_cursors) AS peers,
             (SELECT count(*)::int FROM peer_cursors c, change_feed f
               WHERE f.memory_id = ${id} AND (c.txid, c.seq) < (f.txid, f.seq)) AS behind`;
    if (r!.peers !== nodes.length - 1 || r!.behind !== 0) return false;
  }
  return true;
};

const holds = (n: TestNode, id: string) => api(n.url, 'GET', `/api/v1/memories/${id}`).then((r) => (r.status === 200 ? r.json.memory : undefined));

describe('three nodes, W=2', () => {
  it('accepts writes on any node with a quorum and every node converges', async () => {
    const ids: string[] = [];
    for (const [i, n] of nodes.entries()) {
      const r = await api(n.url, 'POST', '/api/v1/memories', { title: `from ${n.id}`, content: `#${i}`, tags: ['mesh'] });
      expect(r.status).toBe(201);
      expect(r.json.quorum_acks).toBeGreaterThanOrEqual(2);
      ids.push(r.json.id);
    }
    for (const n of nodes) for (const id of ids) await waitFor(() => holds(n, id), { what: `${id} on ${n.id}` });
    // Identical docs everywhere (same version, same timestamps).
    for (const id of ids) {
      const docs = await Promise.all(nodes.map((n) => holds(n, id)));
      expect(docs[1]).toEqual(docs[0]);
      expect(docs[2]).toEqual(docs[0]);
    }
  });

  it('replicates updates and deletes, and a delete never resurrects when an old copy is replayed after it', async () => {
    const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
    const r = await api(a.url, 'POST', '/api/v1/memories', { title: 'mutable', content: 'v1' });
    const id = r.json.id;
    // W=2 guarantees one peer at 201, not both: wait for b (which updates) and c.
    await waitFor(() => holds(b, id));
    await waitFor(() => holds(c, id));
    const u = await api(b.url, 'PUT', `/api/v1/memories/${id}`, { content: 'v2' });
    expect(u.status).toBe(200);
    expect(u.json.quorum_acks).toBeGreaterThanOrEqual(2);
    await waitFor(async () => (await holds(a, id))?.content === 'v2');
    await waitFor(async () => (await holds(c, id))?.content === 'v2');
    const v1 = (await api(a.url, 'GET', `/api/v1/memories/${id}`)).json.memory;
    expect(v1.content).toBe('v2');
    const v0 = { ...v1, content: 'v1', version: 1, updated_at: v1.created_at };
    const d = await api(c.url, 'DELETE', `/api/v1/memories/${id}`);
    expect(d.status).toBe(200);
    for (const n of nodes) await waitFor(async () => (await api(n.url, 'GET', `/api/v1/memories/${id}`)).status === 404, { what: `delete on ${n.id}` });
    await waitFor(() => settled(id), { what: 'delete delivered everywhere' });
    // A late push of the copies from before the delete (as a peer that was slow, or a
    // DLQ replay, would send them), signed by a real mesh member, to every node.
    for (const [i, n] of nodes.entries()) {
      const from = nodes[(i + 1) % nodes.length]!;
      const feedBefore = await feedRows(n, id);
      for (const old of [v1, v0]) {
        const late = await send(n.url, (await asNode(from.id)).push({ sender_agent_id: from.id, recipient: n.id, memories: [old] }));
        expect(late.status).toBe(200);
        expect(late.json).toMatchObject({ applied: 0, noop: 1 });
        expect(late.json.results).toEqual([{ id, status: 'noop' }]);
      }
      // Nothing changed: no feed row (so nothing flows on), still a tombstone, still 404.
      expect(await feedRows(n, id)).toBe(feedBefore);
      const [row] = await n.db.database.sql`SELECT deleted_at FROM memories WHERE id = ${id}`;
      expect(row!.deleted_at).not.toBeNull();
      expect((await api(n.url, 'GET', `/api/v1/memories/${id}`)).status).toBe(404);
    }
  });

  it('applies from peers exactly once: no duplicate rows, no echo loops', async () => {
    const a = nodes[0]!;
    const r = await api(a.url, 'POST', '/api/v1/memories', { title: 'once', content: 'x' });
    const id = r.json.id;
    for (const n of nodes) await waitFor(() => holds(n, id));
    // Every push concerning the id has been made: an echo would be counted below.
    await waitFor(() => settled(id), { what: 'every change of the id delivered to every peer' });
    for (const n of nodes) {
      const feed = await n.db.database.sql`SELECT count(*)::int AS n FROM change_feed WHERE memory_id = ${id}`;
      // one change per node: the write itself, or the single apply of it
      expect(feed[0]!.n).toBe(1);
    }
  });

  it('exposes push and quorum metrics', async () => {
    const w = await api(nodes[0]!.url, 'POST', '/api/v1/memories', { title: 'metered', content: 'x' });
    expect(w.status).toBe(201);
    const m = await api(nodes[0]!.url, 'GET', '/metrics');
    expect(m.text).toMatch(/memfed_push_outcomes_total\{peer="node-b",class="ok"/);
    expect(m.text).toMatch(/memfed_quorum_outcomes_total\{outcome="met"/);
  });
});
