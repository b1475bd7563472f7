import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { api } from '../helpers/node.js';
import { startProcessMesh, type MeshProcess } from '../helpers/process-mesh.js';

let mesh: Awaited<ReturnType<typeof startProcessMesh>>;
let a: MeshProcess, b: MeshProcess, c: MeshProcess;

beforeAll(async () => {
  // A generous ack timeout: no test here measures it, and on a loaded machine a push round
  // trip can take seconds; a short one turns load into 503s (a timed pass/fail).
  // Private clusters: a frozen node would otherwise hold the shared cluster's feed horizon.
  mesh = await startProcessMesh(3, { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '15000' }, { privateClusters: true });
  [a, b, c] = mesh.nodes as [MeshProcess, MeshProcess, MeshProcess];
}, 90_000);
afterAll(async () => {
  await mesh?.destroy();
});

async function holdsAll(n: MeshProcess, ids: string[]): Promise<boolean> {
  const rows = await n.db.database.sql`SELECT count(*)::int AS n FROM memories WHERE id = ANY(${ids}) AND deleted_at IS NULL`;
  return rows[0]!.n === ids.length;
}

describe('partitions between real node processes', () => {
  it('every write made while a peer is SIGSTOPped reaches it after it resumes', async () => {
    c.proc.signal('SIGSTOP');
    const ids: string[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const r = await api(a.url, 'POST', '/api/v1/memories', { title: `paused ${i}`, content: 'x' });
        // W=2: a and b are enough while c is frozen.
        expect(r.status).toBe(201);
        ids.push(r.json.id);
      }
      // The writer has tried c and failed (timed out): these writes really were missed.
      // (b relays them too, but when its push job for c runs is not this test's business.)
      for (const n of [a]) {
        await waitFor(async () => (await n.db.database.sql`SELECT last_error_class FROM peer_cursors WHERE peer_id = ${c.id}`)[0]?.last_error_class === 'transient', { timeoutMs: 30_000, what: `${n.id} saw c fail` }).catch(async (err) => {
          throw new Error(`${(err as Error).message}; cursor: ${JSON.stringify(await n.db.database.sql`SELECT * FROM peer_cursors WHERE peer_id = ${c.id}`)}; log: ${n.proc.output().slice(-3000)}`);
        });
      }
    } finally {
      c.proc.signal('SIGCONT');
    }
    await waitFor(() => holdsAll(b, ids), { timeoutMs: 30_000, what: 'b holds all' });
    await waitFor(() => holdsAll(c, ids), { timeoutMs: 45_000, what: 'c holds all after resume' });
  }, 90_000);

  it('answers 503 quorum_not_met with both peers down, keeps the commit, and delivers once they return', async () => {
    b.proc.signal('SIGSTOP');
    c.proc.signal('SIGSTOP');
    let id: string;
    try {
      const r = await api(a.url, 'POST', '/api/v1/memories', { title: 'lonely', content: 'x' });
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('2');
      expect(r.json).toMatchObject({ error: 'quorum_not_met', got: 1, needed: 2, reason: 'unreachable' });
      id = r.json.id;
      expect(id).toEqual(expect.any(String));
      // committed locally despite the 503
      expect((await api(a.url, 'GET', `/api/v1/memories/${id}`)).status).toBe(200);
    } finally {
      b.proc.signal('SIGCONT');
      c.proc.signal('SIGCONT');
    }
    await waitFor(() => holdsAll(b, [id]), { timeoutMs: 45_000, what: 'b gets the write' });
    await waitFor(() => holdsAll(c, [id]), { timeoutMs: 45_000, what: 'c gets the write' });
  }, 120_000);

  it('a node that was down (SIGKILL) receives what it missed after restart', async () => {
    c.proc.signal('SIGKILL');
    await c.proc.exited;
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await api(b.url, 'POST', '/api/v1/memories', { title: `missed ${i}`, content: 'x' })).json.id);
    await c.restart();
    await waitFor(() => holdsAll(c, ids), { timeoutMs: 45_000, what: 'c catches up after restart' });
  }, 120_000);
});
