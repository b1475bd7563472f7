import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { freePort, waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { UpstreamPeer } from '../helpers/upstream-peer.js';
import { chronoNow } from '../helpers/upstream/store.js';

// A mixed mesh: two memfed nodes and two upstream ai-memory 0.7 conformance peers, all
// enrolled with each other. Every node writes, updates, deletes, archives, restores and
// links; some rows only one side accepts (a memfed rename breaks upstream's
// (title, namespace) upsert; memfed's governance refuses a namespace upstream accepts).
// The mesh must converge on every row both sides accept, show every refused row on the
// side that refused it, and keep every catch-up moving.

const M = ['memfed-x1', 'memfed-x2'] as const;
const U = ['ai-memory-x1', 'ai-memory-x2'] as const;
const POLICY = JSON.stringify({ deny_namespaces: ['secret/**'] });

let keyDir: string;
let nodes: TestNode[] = [];
let ups: UpstreamPeer[] = [];
const memfedUrls = () => nodes.map((n) => n.url);

type State = 'absent' | 'archived' | { title: string; content: string; namespace: string; tags: string[] };

async function stateOnMemfed(n: TestNode, id: string): Promise<State> {
  const got = await api(n.url, 'GET', `/api/v1/memories/${id}`);
  const archived = await api(n.url, 'GET', '/api/v1/archive?limit=1000');
  if ((archived.json.archived as Array<{ id: string }>).some((a) => a.id === id)) return 'archived';
  if (got.status === 404) return 'absent';
  const m = got.json.memory;
  return { title: m.title, content: m.content, namespace: m.namespace, tags: [...m.tags].sort() };
}

/**
 * What an upstream client sees: the live row if there is one, else the archived one.
 * (Upstream keeps archived rows in a table of their own; a memory re-pushed after its
 * archive lands live beside the archived copy, and a later restore of it collides.)
 */
function stateOnUpstream(u: UpstreamPeer, id: string): State {
  const m = u.store.memories.get(id);
  if (m) return { title: m.title, content: m.content, namespace: m.namespace, tags: [...m.tags].sort() };
  return u.store.archived.has(id) ? 'archived' : 'absent';
}

async function memfedLinks(n: TestNode, id: string): Promise<string[]> {
  const r = await api(n.url, 'GET', `/api/v1/links/${id}`);
  if (r.status !== 200) return [];
  return (r.json.links as Array<{ source_id: string; target_id: string; relation: string }>).filter((l) => l.source_id === id).map((l) => `${l.source_id}>${l.relation}>${l.target_id}`);
}

const upstreamLinks = (u: UpstreamPeer, id: string) =>
  [...u.store.links.values()].filter((l) => l.source_id === id).map((l) => `${l.source_id}>${l.relation}>${l.target_id}`);

/**
 * Every memfed node has pushed everything it holds to every upstream peer (no feed row
 * after any such cursor that is not the peer's own). A memfed node relays what it got from
 * another, so an upstream peer's own row can come back to it a hop later; upstream 0.7
 * re-inserts such a row if it has archived it meanwhile, and then refuses the restore
 * (ArchiveRestoreCollision). An operator archiving right after a write meets the same;
 * this test lets the relays settle first.
 */
async function pushesSettled(): Promise<void> {
  const upIds = ups.map((u) => u.id);
  await waitFor(
    async () => {
      for (const n of nodes) {
        const [{ behind }] = (await n.db.database.sql`
          SELECT count(*)::int AS behind FROM unnest(${upIds}::text[]) AS p(id)
          LEFT JOIN peer_cursors c ON c.peer_id = p.id
          WHERE EXISTS (SELECT 1 FROM change_feed f WHERE (c.peer_id IS NULL OR (f.txid, f.seq) > (c.txid, c.seq)) AND f.origin_peer IS DISTINCT FROM p.id)`) as unknown as [{ behind: number }];
        if (behind > 0) return false;
      }
      return true;
    },
    { timeoutMs: 30_000, what: 'every memfed node pushed everything to the upstream peers' },
  );
}

/** One poll of every memfed node by every upstream peer (upstream's 0.7 catch-up tick). */
async function pollAll() {
  const out = [];
  for (const u of ups) for (const n of nodes) out.push({ u: u.id, n: n.id, r: await u.poll({ id: n.id, url: n.url }) });
  return out;
}

const create = async (n: TestNode, body: Record<string, unknown>) => {
  const r = await api(n.url, 'POST', '/api/v1/memories', { content: 'v1', metadata: { scope: 'shared' }, ...body });
  expect(r.status).toBe(201);
  return r.json.id as string;
};

beforeAll(async () => {
  keyDir = newKeyDir();
  for (const id of M) await ensureOwnKey(keyDir, id);
  const ports = [await freePort(), await freePort()];
  const everyone = [...M, ...U];
  ups = await Promise.all(
    U.map((id) => new UpstreamPeer({ id, keyDir, attestation: Object.fromEntries(everyone.filter((p) => p !== id).map((p) => [p, { allowed_namespaces: ['**'] }])) }).start()),
  );
  for (const u of ups) u.enrolIn(keyDir);
  const upstreamPeers = ups.map((u) => `${u.id}=${u.url};flavour=ai-memory-0.7`);
  nodes = [];
  for (const [i, id] of M.entries()) {
    const other = M.findIndex((x) => x !== id);
    nodes.push(
      await startTestNode({
        id,
        port: ports[i],
        keyDir,
        peers: [],
        env: {
          FED_PEERS: [`${M[other]}=http://127.0.0.1:${ports[other]}`, ...upstreamPeers].join(','),
          FED_QUORUM_W: '1',
          CATCHUP_INTERVAL_MS: '500',
          DLQ_REPLAY_INTERVAL_MS: '500',
          GOVERNANCE_POLICY: POLICY,
        },
      }),
    );
  }
}, 120_000);

afterAll(async () => {
  // In parallel: one by one, a dozen shutdowns (each up to SHUTDOWN_GRACE_MS) outlast the hook timeout under load.
  await Promise.all(nodes.map((n) => n.destroy()));
  for (const u of ups) await u.stop();
});

describe('a mesh of two memfed nodes and two ai-memory 0.7 peers', () => {
  it('converges on every row both sides accept, shows each refused row where it was refused, and no catch-up stalls', async () => {
    const [m1, m2] = nodes as [TestNode, TestNode];
    const [u1, u2] = ups as [UpstreamPeer, UpstreamPeer];
    const toAllFrom = (self: UpstreamPeer) => [...memfedUrls(), ...ups.filter((u) => u !== self).map((u) => u.url)];

    // memfed writes: create+update, create+delete, create+archive, create+archive+restore, a rename.
    const m1a = await create(m1, { title: 'mesh m1a', namespace: 'mesh/m1', tags: ['a'] });
    expect((await api(m1.url, 'PUT', `/api/v1/memories/${m1a}`, { content: 'v2' })).status).toBe(200);
    const m1b = await create(m1, { title: 'mesh m1b', namespace: 'mesh/m1' });
    expect((await api(m1.url, 'DELETE', `/api/v1/memories/${m1b}`)).status).toBe(200);
    const m1c = await create(m1, { title: 'mesh m1c', namespace: 'mesh/m1' });
    expect((await api(m1.url, 'POST', '/api/v1/archive', { ids: [m1c] })).status).toBe(200);
    const m1r = await create(m1, { title: 'mesh m1r before', namespace: 'mesh/m1' });
    const m2a = await create(m2, { title: 'mesh m2a', namespace: 'mesh/m2' });
    expect((await api(m2.url, 'POST', '/api/v1/archive', { ids: [m2a] })).status).toBe(200);
    expect((await api(m2.url, 'POST', `/api/v1/archive/${m2a}/restore`)).status).toBe(200);
    const m2d = await create(m2, { title: 'mesh m2d', namespace: 'mesh/m2' });
    expect((await api(m2.url, 'DELETE', `/api/v1/memories/${m2d}`)).status).toBe(200);
    const m2b = await create(m2, { title: 'mesh m2b', namespace: 'mesh/m2', tags: ['x'] });
    expect((await api(m2.url, 'PUT', `/api/v1/memories/${m2b}`, { tags: ['x', 'y'] })).status).toBe(200);

    // upstream writes, pushed the 0.7 way to every other node.
    const u1a = u1.newMemory({ title: 'mesh u1a', namespace: 'mesh/u1', content: 'v1' });
    await u1.write(u1a, toAllFrom(u1));
    // An update stamped as upstream stamps it (chrono RFC 3339, `+00:00`), a moment later.
    await new Promise((r) => setTimeout(r, 5));
    await u1.write({ ...u1a, content: 'v2', updated_at: chronoNow() }, toAllFrom(u1));
    const u1b = u1.newMemory({ title: 'mesh u1b', namespace: 'mesh/u1' });
    await u1.write(u1b, toAllFrom(u1));
    await u1.remove(u1b.id, toAllFrom(u1));
    // Only the upstream side accepts this one: memfed's governance denies secret/**.
    const u1s = u1.newMemory({ title: 'mesh u1s', namespace: 'secret/u1' });
    await u1.write(u1s, toAllFrom(u1));
    const u2a = u2.newMemory({ title: 'mesh u2a', namespace: 'mesh/u2' });
    await u2.write(u2a, toAllFrom(u2));
    await pushesSettled();
    await u2.archiveLocal(u2a.id, toAllFrom(u2));
    await u2.restoreLocal(u2a.id, toAllFrom(u2));
    const u2d = u2.newMemory({ title: 'mesh u2d', namespace: 'mesh/u2' });
    await u2.write(u2d, toAllFrom(u2));
    await u2.remove(u2d.id, toAllFrom(u2));
    const u1r = u1.newMemory({ title: 'mesh u1r', namespace: 'mesh/u1' });
    await u1.write(u1r, toAllFrom(u1));
    await pushesSettled();
    await u1.archiveLocal(u1r.id, toAllFrom(u1));
    await u1.restoreLocal(u1r.id, toAllFrom(u1));
    const u2b = u2.newMemory({ title: 'mesh u2b', namespace: 'mesh/u2' });
    await u2.write(u2b, toAllFrom(u2));
    await pushesSettled();
    await u2.archiveLocal(u2b.id, toAllFrom(u2));

    const expected: Record<string, State> = {
      [m1a]: { title: 'mesh m1a', content: 'v2', namespace: 'mesh/m1', tags: ['a'] },
      [m1b]: 'absent',
      [m1c]: 'archived',
      [m2a]: { title: 'mesh m2a', content: 'v1', namespace: 'mesh/m2', tags: [] },
      [m2b]: { title: 'mesh m2b', content: 'v1', namespace: 'mesh/m2', tags: ['x', 'y'] },
      [u1a.id]: { title: 'mesh u1a', content: 'v2', namespace: 'mesh/u1', tags: [] },
      [u1b.id]: 'absent',
      [u2a.id]: { title: 'mesh u2a', content: u2a.content, namespace: 'mesh/u2', tags: [...u2a.tags].sort() },
      [u2b.id]: 'archived',
      [m2d]: 'absent',
      [u2d.id]: 'absent',
      [u1r.id]: { title: 'mesh u1r', content: u1r.content, namespace: 'mesh/u1', tags: [...u1r.tags].sort() },
    };
    const everywhere = async () => {
      const seen: Record<string, Record<string, State>> = {};
      for (const n of nodes) seen[n.id] = Object.fromEntries(await Promise.all(Object.keys(expected).map(async (id) => [id, await stateOnMemfed(n, id)])));
      for (const u of ups) seen[u.id] = Object.fromEntries(Object.keys(expected).map((id) => [id, stateOnUpstream(u, id)]));
      return seen;
    };
    const want = Object.fromEntries([...M, ...U].map((id) => [id, expected]));
    await waitFor(
      async () => {
        await pollAll();
        return JSON.stringify(await everywhere()) === JSON.stringify(want);
      },
      { timeoutMs: 60_000, what: 'every node holds every row both sides accept' },
    ).catch(async (err) => {
      expect(await everywhere()).toEqual(want);
      throw err;
    });

    // Links made on both sides once both ends exist everywhere: memfed m1a -> u1a, upstream u2a -> m2b.
    expect((await api(m1.url, 'POST', '/api/v1/links', { source_id: m1a, target_id: u1a.id, relation: 'related_to' })).status).toBe(201);
    await u2.linkLocal({ source_id: u2a.id, target_id: m2b, relation: 'derived_from', created_at: new Date().toISOString() }, toAllFrom(u2));
    const wantLinks = { [m1a]: [`${m1a}>related_to>${u1a.id}`], [u2a.id]: [`${u2a.id}>derived_from>${m2b}`] };
    const linksEverywhere = async () => {
      const out: Record<string, Record<string, string[]>> = {};
      for (const n of nodes) out[n.id] = Object.fromEntries(await Promise.all(Object.keys(wantLinks).map(async (id) => [id, await memfedLinks(n, id)])));
      for (const u of ups) out[u.id] = Object.fromEntries(Object.keys(wantLinks).map((id) => [id, upstreamLinks(u, id)]));
      return out;
    };
    const wantAllLinks = Object.fromEntries([...M, ...U].map((id) => [id, wantLinks]));
    await waitFor(async () => JSON.stringify(await linksEverywhere()) === JSON.stringify(wantAllLinks), { timeoutMs: 30_000, what: 'links everywhere' }).catch(async (err) => {
      expect(await linksEverywhere()).toEqual(wantAllLinks);
      throw err;
    });

    // The rename only memfed accepts: both memfed nodes hold it; each upstream peer keeps
    // the old title and shows the refusal; memfed keeps the refused row in its push DLQ.
    expect((await api(m1.url, 'PUT', `/api/v1/memories/${m1r}`, { title: 'mesh m1r after' })).status).toBe(200);
    for (const u of ups) await waitFor(async () => u.refused.some((r) => r.id === m1r), { timeoutMs: 30_000, what: `${u.id} refused the rename` });
    for (const n of nodes) await waitFor(async () => ((await stateOnMemfed(n, m1r)) as { title?: string }).title === 'mesh m1r after', { timeoutMs: 30_000, what: `${n.id} renamed` });
    for (const u of ups) expect(stateOnUpstream(u, m1r)).toMatchObject({ title: 'mesh m1r before' });
    await waitFor(
      async () => (await m1.db.database.sql`SELECT count(*)::int AS n FROM federation_push_dlq WHERE memory_id = ${m1r} AND peer_id = ANY(${[...U]})`)[0]!.n >= 1,
      { timeoutMs: 30_000, what: 'the rename the peers refused is in the push DLQ' },
    );

    // The row only upstream accepts: both upstream peers hold it; each memfed node records
    // the refusal (catch-up refusal) and never applies it.
    for (const u of ups) expect(stateOnUpstream(u, u1s.id)).toMatchObject({ namespace: 'secret/u1' });
    for (const n of nodes) {
      expect(await stateOnMemfed(n, u1s.id)).toBe('absent');
      await waitFor(
        // One pending record per upstream peer that serves it (both do: u2 took it from u1).
        async () => (await n.db.database.sql`SELECT count(*)::int AS n FROM catchup_refusals WHERE memory_id = ${u1s.id} AND status = 'pending' AND peer_id = ANY(${[...U]})`)[0]!.n === U.length,
        { timeoutMs: 30_000, what: `${n.id} recorded the refused pull` },
      );
    }

    // No catch-up stalls: each memfed puller's since watermark for an upstream peer reaches
    // the newest row that peer serves it, with no error; every upstream poll answers 200.
    for (const n of nodes) {
      for (const u of ups) {
        const newest = u.store.updatedSince(undefined, 10_000).map((m) => m.updated_at).sort().at(-1)!;
        await waitFor(
          async () => {
            const [w] = await n.db.database.sql`SELECT since, last_error FROM peer_watermarks WHERE peer_id = ${u.id}`;
            return w && w.last_error === null && w.since >= newest;
          },
          { timeoutMs: 30_000, what: `${n.id} caught up with ${u.id}` },
        );
      }
    }
    const polls = await pollAll();
    expect(polls.map((p) => p.r.status)).toEqual(polls.map(() => 200));
  }, 240_000);
});
