import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateMemory } from '../../src/memory/model.js';
import { formatTimestamp, nowMicros } from '../../src/memory/time.js';
import { applyReplicated } from '../../src/store/replica.js';
import { waitFor } from '../helpers/env.js';
import { startMesh } from '../helpers/mesh.js';
import { api, type TestNode } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';
import { spawnMemfed } from '../helpers/process.js';

/*
 * Operator-triggered repair: the admin route queues a run that the repair worker does, and
 * `memfed repair <peer>` (the real CLI process) runs one itself. Push and catch-up workers
 * are off, so only repair can move the rows.
 */
const TOKEN = 'repair-admin-token';
let a: TestNode;
let b: TestNode;

const only = (n: TestNode, id: string) => applyReplicated(n.db.database.db, { memories: [validateMemory(wireMemory({ id, created_at: formatTimestamp(nowMicros() - 1000), updated_at: formatTimestamp(nowMicros() - 1000) }))], tombstones: [], originPeer: null });
const holds = async (n: TestNode, id: string) => (await n.db.database.sql`SELECT 1 FROM memories WHERE id = ${id}`).length === 1;
const admin = (body: unknown) => api(a.url, 'POST', '/api/v1/admin/repair', body, { authorization: `Bearer ${TOKEN}` });

beforeAll(async () => {
  const nodes = await startMesh(2, { env: { WORKER_QUEUES: 'audit,repair', ADMIN_TOKEN: TOKEN, REPAIR_INTERVAL_MS: '86400000' } });
  [a, b] = [nodes[0]!, nodes[1]!];
  // A repair scheduler's first run is at its creation (node start): let those finish
  // (on empty databases) so only the operator's runs move the rows below.
  for (const n of nodes) {
    await waitFor(async () => /memfed_repair_runs_total\{[^}]*trigger="schedule"[^}]*outcome="ok"[^}]*\} 1$/m.test((await api(n.url, 'GET', '/metrics')).text), { timeoutMs: 30_000, what: `${n.id}'s first scheduled repair` });
  }
});
afterAll(async () => {
  await a?.destroy();
  await b?.destroy();
});

describe('repair on operator demand', () => {
  it('POST /api/v1/admin/repair queues a repair the worker runs, and refuses what it cannot repair', async () => {
    await only(a, 'admin-only-a');
    await only(b, 'admin-only-b');
    const r = await admin({ peer: 'node-b' });
    expect(r.status).toBe(202);
    expect(r.json).toEqual({ requested: true, peer: 'node-b' });
    await waitFor(async () => (await holds(b, 'admin-only-a')) && (await holds(a, 'admin-only-b')), { timeoutMs: 30_000, what: 'the queued repair ran' });
    // The run is over once its outcome is counted (the rows land before it ends).
    const metrics = await waitFor(async () => {
      const text = (await api(a.url, 'GET', '/metrics')).text;
      return /memfed_repair_runs_total\{[^}]*trigger="operator"[^}]*outcome="ok"[^}]*\} 1$/m.test(text) ? text : undefined;
    }, { timeoutMs: 30_000, what: 'the repair run counted' });
    const rowLines = metrics.split('\n').filter((l) => l.startsWith('memfed_repair_rows_total{')).join('\n');
    expect(rowLines).toMatch(/direction="pushed"[^}]*\} 1$/m);
    expect(rowLines).toMatch(/direction="pulled"[^}]*\} 1$/m);

    expect((await admin({ peer: 'node-x' })).json.code).toBe('UNKNOWN_PEER');
    expect((await admin({})).status).toBe(400);
    expect((await api(a.url, 'POST', '/api/v1/admin/repair', { peer: 'node-b' })).status).toBe(401);
  });

  it('memfed repair <peer> runs a repair in the CLI process and prints its figures', async () => {
    await only(b, 'cli-only-b');
    const p = spawnMemfed(['repair', 'node-b', '--json'], { ...a.env, LOG_LEVEL: 'warn' });
    expect(await p.exited).toBe(0);
    const out = JSON.parse(p.stdout());
    expect(out).toMatchObject({ peer: 'node-b', trigger: 'operator', fetched: 1, pulled: 1, pushed: 0, incomplete: false });
    expect(await holds(a, 'cli-only-b')).toBe(true);
    const [audited] = await a.db.database.sql`SELECT count(*)::int AS n FROM audit_outbox WHERE event->>'kind' IN ('repair.operator', 'repair.completed')`;
    expect(audited!.n).toBeGreaterThanOrEqual(2);

    const unknown = spawnMemfed(['repair', 'node-x'], { ...a.env, LOG_LEVEL: 'warn' });
    expect(await unknown.exited).toBe(2);
    expect(unknown.output()).toMatch(/UNKNOWN_PEER/);
  });
});
