import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newNonce } from '../../src/federation/signing.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { validateMemory, type Memory } from '../../src/memory/model.js';
import { formatTimestamp, nowMicros } from '../../src/memory/time.js';
import { runExpirySweep, runTombstoneGc } from '../../src/expiry.js';
import { collectedThrough } from '../../src/store/expiry.js';
import { applyReplicated } from '../../src/store/replica.js';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';

const logger = createLogger('silent', {});
const ago = (ms: number) => formatTimestamp(nowMicros() - ms * 1000);
const ahead = (ms: number) => formatTimestamp(nowMicros() + ms * 1000);

/** A counter's value on a node's /metrics (summed over label sets matching `labels`). */
async function counter(node: TestNode, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** A signed GET /api/v1/sync/since as `peer` (upstream `since` form or memfed cursor form). */
async function since(node: TestNode, peer: FakePeer, query: string) {
  const nonce = newNonce();
  const res = await fetch(`${node.url}/api/v1/sync/since?${query}`, { headers: { 'x-peer-id': peer.id, 'x-memory-nonce': nonce, 'x-memory-sig': peer.signGet('/api/v1/sync/since', query, nonce) } });
  expect(res.status).toBe(200);
  return (await res.json()) as { memories: Memory[]; tombstones?: Array<{ id: string }>; entries?: Array<{ id: string }> };
}

/** Creates a memory through the API and reads it back (the create answer carries only its id). */
async function create(node: TestNode, body: Record<string, unknown>): Promise<Memory> {
  const r = await api(node.url, 'POST', '/api/v1/memories', body);
  expect(r.status, r.text).toBe(201);
  const got = await api(node.url, 'GET', `/api/v1/memories/${r.json.id}`);
  return (got.json?.memory ?? { id: r.json.id }) as Memory;
}

const stored = async (node: TestNode, id: string) => (await node.db.database.sql`SELECT id, deleted_at, expires_at, doc FROM memories WHERE id = ${id}`)[0];
const feedSize = async (node: TestNode) => (await node.db.database.sql`SELECT count(*)::int AS n FROM change_feed`)[0]!.n as number;

describe('tier expiry on one node', () => {
  let n: TestNode;
  let peer: FakePeer;
  beforeAll(async () => {
    const keyDir = newKeyDir();
    peer = await new FakePeer('peer-p').init();
    peer.enrolIn(keyDir);
    // The scheduled sweep is kept out of the way (a day): these tests run it themselves.
    n = await startTestNode({ id: 'exp-1', keyDir, env: { EXPIRY_SWEEP_INTERVAL_MS: '86400000', TOMBSTONE_GC_INTERVAL_MS: '86400000' } });
  });
  afterAll(async () => {
    await n?.destroy();
  });
  const deps = () => ({ db: n.db.database.db, metrics: createMetrics({ nodeId: 'x', role: 'test', defaultMetrics: false }), logger, batchMax: 3, runBudgetMs: 60_000 });

  it('hides an expired memory from get, list, since and feed pages while it is still stored, and refuses to update or delete it', async () => {
    const live = (await create(n, { title: 'stays', content: 'c', tier: 'long' }));
    const gone = (await create(n, { title: 'expires', content: 'c', tier: 'long' }));
    // upstream validate_update allows a past expires_at: the memory expires at once.
    expect((await api(n.url, 'PUT', `/api/v1/memories/${gone.id}`, { expires_at: ago(1000) })).status).toBe(200);
    expect((await api(n.url, 'GET', `/api/v1/memories/${gone.id}`)).status).toBe(404);
    expect((await api(n.url, 'GET', `/api/v1/memories/${live.id}`)).status).toBe(200);
    const listRes = await api(n.url, 'GET', '/api/v1/memories?limit=1000');
    expect(listRes.status, listRes.text).toBe(200);
    const listed = listRes.json.memories.map((m: Memory) => m.id);
    expect(listed).toContain(live.id);
    expect(listed).not.toContain(gone.id);
    const upstreamForm = await since(n, peer, 'since=2000-01-01T00:00:00Z&limit=1000');
    expect(upstreamForm.memories.map((m) => m.id)).toContain(live.id);
    expect(upstreamForm.memories.map((m) => m.id)).not.toContain(gone.id);
    // Feed pages show only transactions below every open one's horizon: wait for the live row.
    const cursorForm = await waitFor(async () => {
      const page = await since(n, peer, 'cursor=v1.0.0&limit=1000');
      return page.memories.some((m) => m.id === live.id) && page;
    }, { timeoutMs: 20_000, what: 'the live memory in a feed page' });
    expect(cursorForm.memories.map((m) => m.id)).not.toContain(gone.id);
    expect((cursorForm.entries ?? []).map((e) => e.id)).not.toContain(gone.id);
    expect(await stored(n, gone.id)).toBeDefined();
    expect((await api(n.url, 'PUT', `/api/v1/memories/${gone.id}`, { title: 'again' })).status).toBe(404);
    expect((await api(n.url, 'DELETE', `/api/v1/memories/${gone.id}`)).status).toBe(404);
  });

  it('sweeps expired rows locally in bounded batches and appends nothing to the change feed (no replicated delete)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await api(n.url, 'POST', '/api/v1/memories', { title: `ttl ${i}`, content: 'c', tier: 'short', ttl_secs: 1 })).json.id);
    const keep = (await create(n, { title: 'not yet', content: 'c', tier: 'short', ttl_secs: 3600 })).id;
    await waitFor(async () => (await api(n.url, 'GET', `/api/v1/memories/${ids[6]}`)).status === 404, { timeoutMs: 20_000, what: 'the 1 s TTLs to pass' });
    const feedBefore = await feedSize(n);
    const d = deps();
    const run = await runExpirySweep(d);
    expect(run.deleted).toBeGreaterThanOrEqual(7);
    expect(run.batches).toBeGreaterThanOrEqual(3);
    for (const id of ids) expect(await stored(n, id)).toBeUndefined();
    expect(await stored(n, keep)).toBeDefined();
    expect(await feedSize(n)).toBe(feedBefore);
    expect(await n.db.database.sql`SELECT 1 FROM memories WHERE deleted_at IS NOT NULL AND id = ANY(${ids})`).toHaveLength(0);
    expect((await d.metrics.registry.getSingleMetricAsString('memfed_expired_swept_total'))).toMatch(new RegExp(`memfed_expired_swept_total\\{[^}]*\\} ${run.deleted}`));
    // Nothing left: a second sweep deletes nothing.
    expect((await runExpirySweep(d)).deleted).toBe(0);
  });

  it('never resurrects an expired row pushed by a peer: not stored for an unknown id, hidden and swept for a known one', async () => {
    const before = await counter(n, 'memfed_expired_arrivals_total', { outcome: 'discarded' });
    const lone = wireMemory({ title: 'expired on arrival', updated_at: ago(60_000), created_at: ago(120_000), expires_at: ago(30_000) });
    const r = await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [lone] }));
    expect(r.json.results).toEqual([{ id: lone.id, status: 'noop' }]);
    expect(await stored(n, lone.id as string)).toBeUndefined();
    expect(await counter(n, 'memfed_expired_arrivals_total', { outcome: 'discarded' })).toBe(before + 1);

    // A newer expired version replaces an older live one (else the replicas would differ), hidden at once.
    const v1 = wireMemory({ title: 'v1', updated_at: ago(60_000), created_at: ago(60_000), expires_at: ahead(3600_000) });
    expect((await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [v1] }))).json.results[0].status).toBe('applied');
    expect((await api(n.url, 'GET', `/api/v1/memories/${v1.id}`)).status).toBe(200);
    const v2 = { ...v1, title: 'v2', version: 2, updated_at: ago(30_000), expires_at: ago(10_000) };
    expect((await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [v2] }))).json.results[0].status).toBe('applied');
    expect((await api(n.url, 'GET', `/api/v1/memories/${v1.id}`)).status).toBe(404);
    expect((await stored(n, v1.id as string))?.doc.title).toBe('v2');
    await runExpirySweep(deps());
    expect(await stored(n, v1.id as string)).toBeUndefined();
    // The same expired version arriving again (a catch-up, a DLQ replay) is not stored.
    expect((await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [v2] }))).json.results[0].status).toBe('noop');
    expect(await stored(n, v1.id as string)).toBeUndefined();
  });

  it('keeps the TTL as upstream does: a read never extends it, an update keeps it unless it sets expires_at', async () => {
    const m = (await create(n, { title: 'ttl rule', content: 'c', tier: 'short', ttl_secs: 3600 }));
    expect(m.expires_at).toBeDefined();
    for (let i = 0; i < 6; i++) expect((await api(n.url, 'GET', `/api/v1/memories/${m.id}`)).json.memory.expires_at).toBe(m.expires_at);
    const updated = (await api(n.url, 'PUT', `/api/v1/memories/${m.id}`, { content: 'new content' })).json.memory;
    expect(updated.expires_at).toBe(m.expires_at);
    const later = ahead(7200_000);
    expect((await api(n.url, 'PUT', `/api/v1/memories/${m.id}`, { expires_at: later })).json.memory.expires_at).toBe(later);
    // The tier TTL of a new memory follows SHORT_TTL_SECS / MID_TTL_SECS (defaults 6 h / 7 days).
    const mid = (await create(n, { title: 'mid default', content: 'c' }));
    expect(Date.parse(mid.expires_at!) - Date.parse(mid.created_at)).toBe(7 * 86_400_000);
    const long = (await create(n, { title: 'long default', content: 'c', tier: 'long' }));
    expect(long.expires_at).toBeUndefined();
  });
});

describe('an extended TTL replicates: the peer keeps serving the memory past its first expiry', () => {
  let a: TestNode, b: TestNode;
  beforeAll(async () => {
    const { startMesh } = await import('../helpers/mesh.js');
    [a, b] = (await startMesh(2, { env: { SHORT_TTL_SECS: '3', EXPIRY_SWEEP_INTERVAL_MS: '500' } })) as [TestNode, TestNode];
  });
  afterAll(async () => {
    await Promise.all([a?.destroy(), b?.destroy()]);
  });

  it('follows the new expires_at on every node, and expires the unextended one everywhere', async () => {
    const extended = (await create(a, { title: 'extended', content: 'c', tier: 'short' }));
    const plain = (await create(a, { title: 'plain', content: 'c', tier: 'short' }));
    expect(Date.parse(plain.expires_at!) - Date.parse(plain.created_at)).toBe(3000);
    const later = ahead(3600_000);
    expect((await api(a.url, 'PUT', `/api/v1/memories/${extended.id}`, { expires_at: later })).status).toBe(200);
    await waitFor(async () => (await api(b.url, 'GET', `/api/v1/memories/${extended.id}`)).json?.memory?.expires_at === later, { timeoutMs: 30_000, what: 'the extension on b' });
    // Past the first expiry: the plain one is gone (and swept) on both, the extended one served on both.
    await waitFor(async () => !(await stored(a, plain.id)) && !(await stored(b, plain.id)), { timeoutMs: 30_000, what: 'the plain memory swept on both nodes' });
    expect((await api(a.url, 'GET', `/api/v1/memories/${extended.id}`)).status).toBe(200);
    expect((await api(b.url, 'GET', `/api/v1/memories/${extended.id}`)).status).toBe(200);
    // The sweep replicated nothing: neither node holds a tombstone for the expired one.
    expect((await a.db.database.sql`SELECT count(*)::int AS n FROM memories WHERE deleted_at IS NOT NULL`)[0]!.n).toBe(0);
    expect((await b.db.database.sql`SELECT count(*)::int AS n FROM memories WHERE deleted_at IS NOT NULL`)[0]!.n).toBe(0);
  });
});

describe('tombstone GC', () => {
  let g: TestNode;
  let peer: FakePeer;
  beforeAll(async () => {
    const keyDir = newKeyDir();
    peer = await new FakePeer('peer-q').init();
    peer.enrolIn(keyDir);
    // `lagger` is configured but never reachable: its cursor stays where the test puts it.
    g = await startTestNode({
      id: 'gc-1',
      keyDir,
      peers: [{ id: 'lagger', url: 'http://127.0.0.1:9' }],
      env: { TOMBSTONE_GRACE_MS: '2000', FEED_RETENTION_MS: '1000', TOMBSTONE_GC_INTERVAL_MS: '86400000', EXPIRY_SWEEP_INTERVAL_MS: '86400000', RECONCILE_INTERVAL_MS: '3600000' },
    });
  });
  afterAll(async () => {
    await g?.destroy();
  });
  const gc = (batchMax: number) => runTombstoneGc({ db: g.db.database.db, metrics: createMetrics({ nodeId: 'x', role: 'test', defaultMetrics: false }), logger, batchMax, runBudgetMs: 60_000, tombstoneGraceMs: 2000 });
  const tombstones = async () => (await g.db.database.sql`SELECT id FROM memories WHERE deleted_at IS NOT NULL ORDER BY id`).map((r) => r.id as string);
  const passLaggerTo = async (pos: { txid: string; seq: string }) => {
    await g.db.database.sql`INSERT INTO peer_cursors (peer_id, txid, seq) VALUES ('lagger', ${pos.txid}::xid8, ${pos.seq}::bigint)
      ON CONFLICT (peer_id) DO UPDATE SET txid = excluded.txid, seq = excluded.seq`;
  };
  const head = async () => (await g.db.database.sql`SELECT txid::text AS txid, seq::text AS seq FROM change_feed ORDER BY txid DESC, seq DESC LIMIT 1`)[0] as { txid: string; seq: string };

  const deleted: Memory[] = [];
  it('keeps tombstones a configured peer has not been sent, and those younger than the grace period; collects the rest in batches', async () => {
    for (let i = 0; i < 5; i++) {
      const m = await create(g, { title: `doomed ${i}`, content: 'c', tier: 'long' });
      expect((await api(g.url, 'DELETE', `/api/v1/memories/${m.id}`)).status).toBe(200);
      deleted.push(m);
    }
    await passLaggerTo({ txid: '0', seq: '0' });
    await new Promise((r) => setTimeout(r, 2500));
    expect((await gc(2)).deleted).toBe(0);
    expect(await tombstones()).toHaveLength(5);
    // The lagger is sent everything so far; one more deletion now is younger than the grace period.
    await passLaggerTo(await head());
    const young = (await create(g, { title: 'young', content: 'c', tier: 'long' }));
    expect((await api(g.url, 'DELETE', `/api/v1/memories/${young.id}`)).status).toBe(200);
    await passLaggerTo(await head());
    const run = await gc(2);
    expect(run).toMatchObject({ deleted: 5, batches: 3 });
    expect(await tombstones()).toEqual([young.id]);
    expect(await collectedThrough(g.db.database.db)).not.toBeNull();
    // A tombstone the lagger has not been sent stays past its grace period.
    const held = (await create(g, { title: 'held', content: 'c', tier: 'long' }));
    expect((await api(g.url, 'DELETE', `/api/v1/memories/${held.id}`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await gc(10)).deleted).toBe(1);
    expect(await tombstones()).toEqual([held.id]);
  });

  it('refuses an old copy of a deleted memory whose tombstone was collected (beyond_tombstone_grace), and applies newer rows', async () => {
    const before = await counter(g, 'memfed_beyond_grace_refused_total');
    const old = deleted[0]!;
    // A dry run answers as the real push will.
    const dry = await send(g.url, peer.push({ sender_agent_id: 'peer-q', memories: [old], dry_run: true }));
    expect(dry.json).toMatchObject({ dry_run: true, skipped: 1, noop: 0 });
    expect(dry.json.results).toEqual([{ id: old.id, status: 'skipped', reason: expect.stringMatching(/^beyond_tombstone_grace: /) }]);
    const r = await send(g.url, peer.push({ sender_agent_id: 'peer-q', memories: [old] }));
    expect(r.status).toBe(200);
    expect(r.json.skipped).toBe(1);
    expect(r.json.results).toEqual([{ id: old.id, status: 'skipped', reason: expect.stringMatching(/^beyond_tombstone_grace: /) }]);
    expect(await stored(g, old.id)).toBeUndefined();
    // A tombstone as old, for an id held nowhere here, is refused the same way.
    const t = await send(g.url, peer.push({ sender_agent_id: 'peer-q', memories: [], tombstones: [{ id: 'never-here', deleted_at: old.updated_at }] }));
    expect(t.json.results).toEqual([{ id: 'never-here', status: 'skipped', reason: expect.stringMatching(/^beyond_tombstone_grace: /) }]);
    expect(await counter(g, 'memfed_beyond_grace_refused_total')).toBe(before + 2);
    // Recorded on the receiver too (an ai-memory sender ignores `skipped`): the audit chain.
    const audited = await waitFor(async () => {
      const rows = await g.db.database.sql`SELECT event FROM audit_outbox WHERE event->>'kind' = 'federation.refused' AND event->'details'->>'tag' = 'beyond_tombstone_grace'`;
      return rows.length >= 2 && rows.map((r) => r.event as { actor: string; details: { rows: Array<{ id: string }> } });
    }, { timeoutMs: 20_000, what: 'the refusals in the audit outbox' });
    expect(audited.flatMap((e) => e.details.rows.map((r) => r.id))).toEqual(expect.arrayContaining([old.id, 'never-here']));
    expect(audited[0]!.actor).toBe('peer-q');
    // A longer grace set since (the mark now lies after the grace horizon) still refuses what the mark covers.
    const through = (await collectedThrough(g.db.database.db))!;
    const underMark = validateMemory(wireMemory({ id: 'under-the-mark', created_at: formatTimestamp(through - 1000), updated_at: formatTimestamp(through - 1000) }));
    const longer = await applyReplicated(g.db.database.db, { memories: [underMark], tombstones: [], originPeer: 'peer-q' }, undefined, { graceMs: 10 * 86_400_000 });
    expect(longer.refused.map((x) => x.id)).toEqual(['under-the-mark']);
    expect(await stored(g, 'under-the-mark')).toBeUndefined();
    // Newer than every collected tombstone: applied.
    const fresh = wireMemory({ title: 'fresh', created_at: ago(1000), updated_at: ago(1000) });
    expect((await send(g.url, peer.push({ sender_agent_id: 'peer-q', memories: [fresh] }))).json.results).toEqual([{ id: fresh.id, status: 'applied' }]);
    // An old version of an id held here (its tombstone) goes through LWW: the tombstone wins.
    const heldId = (await tombstones())[0]!;
    const heldCopy = wireMemory({ id: heldId, title: 'held again', created_at: '2026-01-01T00:00:00.000000+00:00', updated_at: '2026-01-01T00:00:00.000000+00:00' });
    expect((await send(g.url, peer.push({ sender_agent_id: 'peer-q', memories: [heldCopy] }))).json.results).toEqual([{ id: heldId, status: 'noop' }]);
  });
});

describe('beyond_tombstone_grace is recorded where refusals are: the sender DLQ (push) and catch-up refusals (pull)', () => {
  let a: TestNode, b: TestNode;
  beforeAll(async () => {
    const { startMesh } = await import('../helpers/mesh.js');
    [a, b] = (await startMesh(2, { env: { TOMBSTONE_GRACE_MS: '2000', FEED_RETENTION_MS: '1000', CATCHUP_INTERVAL_MS: '500', TOMBSTONE_GC_INTERVAL_MS: '86400000', DLQ_REPLAY_INTERVAL_MS: '3600000' } })) as [TestNode, TestNode];
  });
  afterAll(async () => {
    await Promise.all([a?.destroy(), b?.destroy()]);
  });

  it('refuses on both paths, records it, and b never holds the row', async () => {
    // b collects a tombstone (deleted 10 s ago, sent to a).
    const pos = await applyReplicated(b.db.database.db, { memories: [], tombstones: [{ id: 'x-deleted', deleted_at: ago(10_000) }], originPeer: null });
    await waitFor(async () => {
      const [c] = await b.db.database.sql`SELECT (txid, seq) >= (${pos.position!.txid}::xid8, ${pos.position!.seq}::bigint) AS passed FROM peer_cursors WHERE peer_id = ${a.id}`;
      return c?.passed === true;
    }, { timeoutMs: 30_000, what: "b's delete sent to a" });
    const run = await runTombstoneGc({ db: b.db.database.db, metrics: createMetrics({ nodeId: 'x', role: 'test', defaultMetrics: false }), logger, batchMax: 100, runBudgetMs: 60_000, tombstoneGraceMs: 2000 });
    expect(run.deleted).toBe(1);
    // a holds a memory older than that tombstone, of an id b never held.
    const y = validateMemory(wireMemory({ id: 'y-old', title: 'old row', created_at: ago(20_000), updated_at: ago(20_000) }));
    await applyReplicated(a.db.database.db, { memories: [y], tombstones: [], originPeer: null });
    await waitFor(async () => (await a.db.database.sql`SELECT last_error FROM federation_push_dlq WHERE memory_id = 'y-old' AND peer_id = ${b.id}`)[0]?.last_error, { timeoutMs: 30_000, what: "y-old in a's DLQ" });
    const [dlq] = await a.db.database.sql`SELECT failure_class, last_error FROM federation_push_dlq WHERE memory_id = 'y-old'`;
    expect(dlq!.last_error).toMatch(/^beyond_tombstone_grace: /);
    const refusal = await waitFor(async () => (await b.db.database.sql`SELECT code, lane, status FROM catchup_refusals WHERE memory_id = 'y-old' AND peer_id = ${a.id}`)[0], { timeoutMs: 30_000, what: "y-old in b's catch-up refusals" });
    expect(refusal).toMatchObject({ code: 'beyond_tombstone_grace', lane: 'memories', status: 'pending' });
    expect(await stored(b, 'y-old')).toBeUndefined();
  });
});
