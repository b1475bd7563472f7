import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { startMesh } from '../helpers/mesh.js';
import { api, type TestNode } from '../helpers/node.js';

let nodes: TestNode[];
beforeAll(async () => {
  nodes = await startMesh(3, { env: { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '3000' } });
});
afterAll(async () => {
  await Promise.all((nodes ?? []).map((n) => n.destroy()));
});

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

  it('replicates updates and deletes, and a delete never resurrects', async () => {
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
    const d = await api(c.url, 'DELETE', `/api/v1/memories/${id}`);
    expect(d.status).toBe(200);
    for (const n of nodes) await waitFor(async () => (await api(n.url, 'GET', `/api/v1/memories/${id}`)).status === 404, { what: `delete on ${n.id}` });
    // Replaying the old version at a node (as a late push would) changes nothing.
    const [row] = await a.db.database.sql`SELECT deleted_at FROM memories WHERE id = ${id}`;
    expect(row!.deleted_at).not.toBeNull();
  });

  it('applies from peers exactly once: no duplicate rows, no echo loops', async () => {
    const a = nodes[0]!;
    const r = await api(a.url, 'POST', '/api/v1/memories', { title: 'once', content: 'x' });
    const id = r.json.id;
    for (const n of nodes) await waitFor(() => holds(n, id));
    await new Promise((res) => setTimeout(res, 1500));
    for (const n of nodes) {
      const feed = await n.db.database.sql`SELECT count(*)::int AS n FROM change_feed WHERE memory_id = ${id}`;
      // one change per node: the write itself, or the single apply of it
      expect(feed[0]!.n).toBe(1);
    }
  });

  it('exposes push and quorum metrics', async () => {
    const m = await api(nodes[0]!.url, 'GET', '/metrics');
    expect(m.text).toMatch(/memfed_push_outcomes_total\{peer="node-b",class="ok"/);
    expect(m.text).toMatch(/memfed_quorum_outcomes_total\{outcome="met"/);
  });
});
