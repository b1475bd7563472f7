import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPeer } from '../../src/federation/peer-admin.js';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { waitFor } from '../helpers/env.js';
import { startMesh } from '../helpers/mesh.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';

/*
 * The mesh case of change-feed retention: three nodes write and delete, retention prunes
 * every feed (short windows by env), and then a fourth node is added to each of them at
 * runtime. Nothing it needs is in any feed any more: it is bootstrapped by snapshot (each
 * node pushes it one; it pulls one from each) and then follows live writes both ways.
 */
const ENV = { FEED_RETENTION_MS: '1000', FEED_MAX_LAG_MS: '600000', RETENTION_INTERVAL_MS: '300', CATCHUP_INTERVAL_MS: '1000', FED_QUORUM_W: '1' };
let keyDir: string;
let mesh: TestNode[] = [];
let d: TestNode | undefined;

const write = async (n: TestNode, title: string) => {
  const r = await api(n.url, 'POST', '/api/v1/memories', { title, content: title, tier: 'long', namespace: 'retention/mesh' });
  expect(r.status).toBe(201);
  return r.json.id as string;
};
const live = async (n: TestNode) => (await n.db.database.sql`SELECT id FROM memories WHERE deleted_at IS NULL ORDER BY id`).map((r) => r.id as string);
const tombstones = async (n: TestNode) => (await n.db.database.sql`SELECT id FROM memories WHERE deleted_at IS NOT NULL ORDER BY id`).map((r) => r.id as string);
const feedRows = async (n: TestNode) => (await n.db.database.sql`SELECT count(*)::int AS n FROM change_feed`)[0]!.n as number;
const horizonSeq = async (n: TestNode) => Number((await n.db.database.sql`SELECT pruned_seq::text AS s FROM feed_horizon WHERE id = 1`)[0]?.s ?? 0);
const metric = async (n: TestNode, name: string, labels: Record<string, string>) => {
  const text = (await api(n.url, 'GET', '/metrics')).text;
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);
};

beforeAll(async () => {
  keyDir = newKeyDir();
  await ensureOwnKey(keyDir, 'node-d');
  mesh = await startMesh(3, { env: ENV, keyDir });
}, 120_000);
afterAll(async () => {
  // Stop every node first (no pushes to a node being dropped), then drop them together:
  // each DROP DATABASE waits for a checkpoint, slow on a loaded server.
  const nodes = [...(d ? [d] : []), ...mesh];
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all(nodes.map((n) => n.destroy()));
}, 180_000);

describe('a node added to a mesh that has pruned its feed', () => {
  const written: string[] = [];
  const deleted: string[] = [];

  it('the mesh converges and retention prunes every feed to nothing (every peer acked, older than the window)', async () => {
    for (let i = 0; i < 30; i++) written.push(await write(mesh[i % 3]!, `mesh ${i}`));
    for (const id of written.slice(0, 6)) {
      const r = await api(mesh[1]!.url, 'DELETE', `/api/v1/memories/${id}`);
      // A write made on another node may not have reached this one yet: retry until it has.
      if (r.status === 404) await waitFor(async () => (await api(mesh[1]!.url, 'DELETE', `/api/v1/memories/${id}`)).status === 200, { timeoutMs: 30_000, what: `delete ${id}` });
      deleted.push(id);
    }
    const want = written.slice(6).sort();
    await waitFor(async () => {
      for (const n of mesh) if (JSON.stringify(await live(n)) !== JSON.stringify(want)) return false;
      return true;
    }, { timeoutMs: 60_000, intervalMs: 250, what: 'the three nodes hold the same live set' });
    await waitFor(async () => {
      for (const n of mesh) if ((await feedRows(n)) > 0 || (await horizonSeq(n)) === 0) return false;
      return true;
    }, { timeoutMs: 60_000, intervalMs: 250, what: 'every feed pruned' });
    for (const n of mesh) expect(await metric(n, 'memfed_feed_pruned_rows_total', {})).toBeGreaterThan(0);
  }, 150_000);

  it('a fourth node added at runtime gets the same live set and the tombstones, by snapshot, and then follows live writes both ways', async () => {
    d = await startTestNode({ id: 'node-d', keyDir, peers: mesh.map((n) => ({ id: n.id, url: n.url })), env: ENV });
    for (const n of mesh) await addPeer({ db: n.db.database.db, audit: { record() {} }, nodeId: n.id }, { id: 'node-d', url: d.url }, 'test');
    const want = written.slice(6).sort();
    await waitFor(async () => JSON.stringify(await live(d!)) === JSON.stringify(want), { timeoutMs: 60_000, intervalMs: 250, what: 'node-d holds the live set' });
    await waitFor(async () => (await tombstones(d!)).length === deleted.length, { timeoutMs: 30_000, intervalMs: 250, what: 'node-d holds the tombstones' });
    expect(await tombstones(d)).toEqual([...deleted].sort());
    // It was bootstrapped, not fed from feeds that no longer hold the rows: each node
    // pushed it its snapshot, and it pulled one from each (410 resync_required first).
    for (const n of mesh) await waitFor(async () => (await metric(n, 'memfed_snapshot_bootstraps_total', { direction: 'push', outcome: 'completed', peer: 'node-d' })) === 1, { timeoutMs: 30_000, intervalMs: 250, what: `${n.id} pushed node-d a snapshot` });
    for (const n of mesh) await waitFor(async () => (await metric(d!, 'memfed_snapshot_bootstraps_total', { direction: 'pull', outcome: 'completed', peer: n.id })) >= 1, { timeoutMs: 30_000, intervalMs: 250, what: `node-d pulled ${n.id}'s snapshot` });
    expect(await metric(mesh[0]!, 'memfed_snapshot_rows_total', { direction: 'served', peer: 'node-d' })).toBeGreaterThan(0);
    // Live: a write on the mesh reaches node-d, a write on node-d reaches the mesh.
    const onA = await write(mesh[0]!, 'after node-d joined');
    const onD = await write(d, 'written on node-d');
    await waitFor(async () => (await live(d!)).includes(onA), { timeoutMs: 30_000, intervalMs: 250, what: 'node-d receives a new write' });
    for (const n of mesh) await waitFor(async () => (await live(n)).includes(onD), { timeoutMs: 30_000, intervalMs: 250, what: `${n.id} receives node-d's write` });
    // And every node holds the same live set.
    const all = await live(mesh[0]!);
    await waitFor(async () => {
      for (const n of [...mesh, d!]) if (JSON.stringify(await live(n)) !== JSON.stringify(all)) return false;
      return true;
    }, { timeoutMs: 30_000, intervalMs: 250, what: 'all four hold the same live set' });
  }, 150_000);
});
