import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { waitFor } from '../helpers/env.js';
import { startMesh } from '../helpers/mesh.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';

const nodes: TestNode[] = [];
afterAll(async () => {
  // In parallel: one by one, a dozen shutdowns (each up to SHUTDOWN_GRACE_MS) outlast the hook timeout under load.
  await Promise.all(nodes.map((n) => n.destroy()));
});

const create = async (n: TestNode, title: string) => {
  const r = await api(n.url, 'POST', '/api/v1/memories', { title, content: 'x', namespace: 'links/test' });
  expect(r.status).toBe(201);
  return r.json.id as string;
};
const status = async (n: TestNode, id: string) => (await api(n.url, 'GET', `/api/v1/memories/${id}`)).status;
const linksOn = async (n: TestNode, id: string) => {
  const r = await api(n.url, 'GET', `/api/v1/links/${id}`);
  return r.status === 200 ? (r.json.links as Array<{ source_id: string; target_id: string; relation: string }>) : [];
};
const archivedOn = async (n: TestNode) => ((await api(n.url, 'GET', '/api/v1/archive')).json.archived as Array<{ id: string }>).map((m) => m.id);

describe('archive, restore and links between memfed nodes', () => {
  it('made on node A, arrive at node B by push: link, archive, restore, link removal', async () => {
    const [a, b] = await startMesh(2, { env: { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '15000' } });
    nodes.push(a!, b!);
    const x = await create(a!, 'x');
    const y = await create(a!, 'y');
    await waitFor(async () => (await status(b!, y)) === 200, { what: 'y on b' });

    const l = await api(a!.url, 'POST', '/api/v1/links', { source_id: x, target_id: y, relation: 'supersedes' });
    expect(l.status).toBe(201);
    expect(l.json).toMatchObject({ linked: true, source_id: x, target_id: y, relation: 'supersedes' });
    // W=2: the 201 came after b acked, so b already holds the link.
    expect(await linksOn(b!, y)).toEqual([expect.objectContaining({ source_id: x, target_id: y, relation: 'supersedes' })]);

    const ar = await api(a!.url, 'POST', '/api/v1/archive', { ids: [x, 'no-such-id'] });
    expect(ar.status).toBe(200);
    expect(ar.json).toMatchObject({ archived: [x], missing: ['no-such-id'], count: 1, reason: 'archive' });
    expect(await status(b!, x)).toBe(404);
    expect(await archivedOn(b!)).toContain(x);
    // The reason travels with the register (upstream's list shows archive_reason).
    expect((await api(b!.url, 'GET', '/api/v1/archive')).json.archived).toEqual([expect.objectContaining({ id: x, archive_reason: 'archive' })]);

    const rs = await api(b!.url, 'POST', `/api/v1/archive/${x}/restore`);
    expect(rs.json).toMatchObject({ restored: true, id: x });
    expect(await status(a!, x)).toBe(200);
    expect(await archivedOn(a!)).not.toContain(x);

    const del = await api(b!.url, 'DELETE', '/api/v1/links', { source_id: x, target_id: y, relation: 'supersedes' });
    expect(del.json).toMatchObject({ deleted: true });
    expect(await linksOn(a!, x)).toEqual([]);
    // Both nodes end with the same registers and link rows.
    const rows = async (n: TestNode) => ({
      mem: await n.db.database.sql`SELECT id, archived_at::text, archive_changed_at::text, archive_reason FROM memories WHERE id IN (${x}, ${y}) ORDER BY id`,
      links: await n.db.database.sql`SELECT source_id, target_id, relation, created_at::text, removed_at::text FROM memory_links`,
    });
    expect(await rows(b!)).toEqual(await rows(a!));
  });

  it('made on a source with no peers, arrive at a puller by catch-up', async () => {
    const keyDir = newKeyDir();
    await ensureOwnKey(keyDir, 'al-source');
    await ensureOwnKey(keyDir, 'al-puller');
    const source = await startTestNode({ id: 'al-source', keyDir });
    nodes.push(source);
    const x = await create(source, 'x');
    const y = await create(source, 'y');
    const z = await create(source, 'z');
    expect((await api(source.url, 'POST', '/api/v1/links', { from: x, to: y, rel_type: 'derived_from' })).status).toBe(201);
    expect((await api(source.url, 'POST', '/api/v1/links', { source_id: z, target_id: y })).status).toBe(201);
    expect((await api(source.url, 'POST', '/api/v1/archive', { ids: [x, z] })).json.archived).toEqual([x, z]);
    expect((await api(source.url, 'POST', `/api/v1/archive/${z}/restore`)).status).toBe(200);
    const puller = await startTestNode({ id: 'al-puller', keyDir, peers: [{ id: source.id, url: source.url }], env: { CATCHUP_INTERVAL_MS: '500' } });
    nodes.push(puller);
    await waitFor(async () => (await linksOn(puller, y)).length === 2, { timeoutMs: 30_000, what: 'links pulled' });
    expect((await linksOn(puller, y)).map((l) => [l.source_id, l.relation]).sort()).toEqual([[x, 'derived_from'], [z, 'related_to']].sort());
    expect(await status(puller, x)).toBe(404);
    expect(await archivedOn(puller)).toEqual([x]);
    expect(await status(puller, z)).toBe(200);
  });
});

describe('a 0.7-shaped push with archives, restores and links', () => {
  let n: TestNode;
  let peer: FakePeer;
  beforeAll(async () => {
    const keyDir = newKeyDir();
    peer = await new FakePeer('peer-07').init();
    peer.enrolIn(keyDir);
    n = await startTestNode({ id: 'al-receiver', keyDir });
    nodes.push(n);
  });
  const push = async (body: Record<string, unknown>) => {
    const r = await send(n.url, peer.push({ sender_agent_id: 'peer-07', memories: [], ...body }));
    expect(r.status).toBe(200);
    return r.json;
  };

  it('applies every lane as upstream sends them (src/federation/sync.rs broadcast_*_quorum) and answers upstream counters', async () => {
    const m1 = wireMemory();
    const m2 = wireMemory();
    // broadcast_store_quorum, then broadcast_link_quorum: `links: [link]` with an rfc3339 created_at (nanoseconds).
    expect(await push({ memories: [m1, m2] })).toMatchObject({ applied: 2 });
    const link = { source_id: m1.id, target_id: m2.id, relation: 'derives_from', created_at: '2026-01-01T10:00:00.123456789+00:00' };
    expect(await push({ links: [link] })).toMatchObject({ applied: 0, links_applied: 1, skipped: 0, unsupported_on_postgres: 0 });
    // A duplicate is a no-op (upstream: unique (source, target, relation)).
    expect(await push({ links: [link] })).toMatchObject({ links_applied: 0, noop: 1, skipped: 0 });
    expect(await linksOn(n, m2.id as string)).toEqual([{ ...link, created_at: '2026-01-01T10:00:00.123456+00:00', attest_level: 'unsigned' }]);
    // broadcast_archive_quorum: `archives: [id]`.
    expect(await push({ archives: [m1.id] })).toMatchObject({ archived: 1, skipped: 0, unsupported_on_postgres: 0 });
    expect(await status(n, m1.id as string)).toBe(404);
    // Recorded as upstream's receiver records it.
    expect((await api(n.url, 'GET', '/api/v1/archive')).json.archived).toEqual([expect.objectContaining({ id: m1.id, archive_reason: 'sync_push' })]);
    // A replay of the bare id is a no-op (upstream: the row is no longer in `memories`); no feed row.
    const feed = async () => Number((await n.db.database.sql`SELECT count(*)::int AS c FROM change_feed WHERE memory_id = ${m1.id as string}`)[0]!.c);
    const before = await feed();
    expect(await push({ archives: [m1.id] })).toMatchObject({ archived: 0, noop: 1 });
    expect(await feed()).toBe(before);
    // broadcast_restore_quorum: `restores: [id]`.
    expect(await push({ restores: [m1.id] })).toMatchObject({ restored: 1, skipped: 0 });
    expect(await status(n, m1.id as string)).toBe(200);
    expect(await push({ restores: [m1.id] })).toMatchObject({ restored: 0, noop: 1 });
  });

  it('LWW: an older archive does not hide a newer update; a newer archive holds against an older update; a restore after an archive wins', async () => {
    const m = wireMemory({ updated_at: '2026-02-01T00:00:00.000000+00:00' });
    await push({ memories: [m] });
    // Archived at a time before the stored version: it loses to the content update.
    await push({ archive_events: [{ id: m.id, archived: true, at: '2026-01-15T00:00:00Z' }] });
    expect(await status(n, m.id as string)).toBe(200);
    // Archived after it: archived.
    await push({ archive_events: [{ id: m.id, archived: true, at: '2026-02-10T00:00:00Z' }] });
    expect(await status(n, m.id as string)).toBe(404);
    // A content update older than the archive (but newer than the stored content) lands and stays archived.
    expect(await push({ memories: [{ ...m, content: 'newer content', updated_at: '2026-02-05T00:00:00.000000+00:00' }] })).toMatchObject({ applied: 1 });
    expect(await status(n, m.id as string)).toBe(404);
    // A content update newer than the archive brings it back.
    await push({ memories: [{ ...m, content: 'newest', updated_at: '2026-02-20T00:00:00.000000+00:00' }] });
    expect(await status(n, m.id as string)).toBe(200);
    // Archive again, restore later; an archive older than the restore arriving late is a no-op.
    await push({ archive_events: [{ id: m.id, archived: true, at: '2026-03-01T00:00:00Z' }] });
    expect(await status(n, m.id as string)).toBe(404);
    expect(await push({ archive_events: [{ id: m.id, archived: false, at: '2026-03-03T00:00:00Z' }] })).toMatchObject({ restored: 1 });
    expect(await push({ archive_events: [{ id: m.id, archived: true, at: '2026-03-02T00:00:00Z' }] })).toMatchObject({ archived: 0, noop: 1 });
    expect(await status(n, m.id as string)).toBe(200);
  });

  it('link LWW: a removal beats an older creation in either order; a newer creation brings the link back', async () => {
    const [s, t] = [wireMemory(), wireMemory()];
    await push({ memories: [s, t] });
    const key = { source_id: s.id, target_id: t.id, relation: 'contradicts' };
    // Removal first (never seen link), then the older creation: stays removed.
    expect(await push({ link_removals: [{ ...key, removed_at: '2026-01-05T00:00:00Z' }] })).toMatchObject({ links_removed: 1 });
    expect(await push({ links: [{ ...key, created_at: '2026-01-04T00:00:00Z' }] })).toMatchObject({ links_applied: 0, noop: 1 });
    expect(await linksOn(n, s.id as string)).toEqual([]);
    expect(await push({ links: [{ ...key, created_at: '2026-01-06T00:00:00Z' }] })).toMatchObject({ links_applied: 1 });
    expect(await linksOn(n, s.id as string)).toHaveLength(1);
  });

  it('counts what it cannot apply instead of acking it: lanes memfed does not hold', async () => {
    const m = wireMemory();
    const r = await push({ memories: [m], pendings: [{ id: 'p1' }, { id: 'p2' }], namespace_meta: [{ namespace: 'x', standard_id: 'y' }], namespace_meta_clears: [] });
    expect(r).toMatchObject({ applied: 1, skipped: 0, unsupported_on_postgres: 3, unsupported_lanes: { pendings: 2, namespace_meta: 1 } });
    expect(r).not.toHaveProperty('ignored');
    expect((await push({ memories: [m] })).unsupported_on_postgres).toBe(0);
  });

  it('a link that overtakes its memories (upstream pushes it in its own request) is kept and served once they arrive', async () => {
    const [s, t] = [wireMemory(), wireMemory()];
    const link = { source_id: s.id, target_id: t.id, relation: 'related_to', created_at: '2026-01-01T00:00:00Z' };
    expect(await push({ links: [link] })).toMatchObject({ links_applied: 1, skipped: 0 });
    await push({ memories: [t] });
    expect(await linksOn(n, t.id as string)).toEqual([]);
    await push({ memories: [s] });
    expect(await linksOn(n, t.id as string)).toEqual([expect.objectContaining({ source_id: s.id, target_id: t.id })]);
  });

  it('refuses archive events and links stamped in the future', async () => {
    const [s, t] = [wireMemory(), wireMemory()];
    await push({ memories: [s, t] });
    const r = await push({ memories: [{ ...s, content: 'newer', updated_at: '2026-01-02T00:00:00.000000+00:00' }], archive_events: [{ id: s.id, archived: true, at: '2999-01-01T00:00:00Z' }], links: [{ source_id: s.id, target_id: t.id, relation: 'related_to', created_at: '2999-01-01T00:00:00Z' }] });
    expect(r).toMatchObject({ applied: 1, archived: 0, links_applied: 0, skipped: 2 });
    // The row applied, but the skipped elements naming it come first: a memfed sender dead-letters the item.
    expect(r.results.map((x: { status: string; reason?: string }) => [x.status, x.reason?.split(':')[0]])).toEqual([
      ['skipped', 'FUTURE_TIMESTAMP'],
      ['skipped', 'FUTURE_TIMESTAMP'],
      ['applied', undefined],
    ]);
    expect(await status(n, s.id as string)).toBe(200);
  });

  it('a dry run applies no lane', async () => {
    const m = wireMemory();
    await push({ memories: [m] });
    const r = await push({ dry_run: true, archives: [m.id], links: [{ source_id: m.id, target_id: m.id + 'x', relation: 'related_to', created_at: '2026-01-01T00:00:00Z' }] });
    expect(r).toMatchObject({ archived: 0, links_applied: 0, dry_run: true });
    expect(r.results).toEqual([{ id: m.id, status: 'noop' }]);
    expect(await status(n, m.id as string)).toBe(200);
    expect(await linksOn(n, m.id as string)).toEqual([]);
    expect(await n.db.database.sql`SELECT 1 FROM memory_links WHERE source_id = ${m.id as string}`).toHaveLength(0);
  });

  it('the upstream since form leaves archived memories out (upstream: they leave `memories`)', async () => {
    const m = wireMemory({ updated_at: '2026-04-01T00:00:00.000000+00:00' });
    await push({ memories: [m], archive_events: [{ id: m.id, archived: true, at: '2026-04-02T00:00:00Z' }] });
    const rows = await n.db.database.sql`SELECT 1 FROM memories WHERE id = ${m.id as string} AND archived_at IS NOT NULL`;
    expect(rows).toHaveLength(1);
    const { memoriesUpdatedSince } = await import('../../src/store/memories.js');
    const page = await memoriesUpdatedSince(n.db.database.db, '2026-03-31T00:00:00.000000+00:00', 100);
    expect(page.map((x) => x.id)).not.toContain(m.id);
  });
});

describe('client API: archive, restore, links', () => {
  let n: TestNode;
  let x: string, y: string;
  beforeAll(async () => {
    n = await startTestNode({ id: 'al-api' });
    nodes.push(n);
    x = await create(n, 'x');
    y = await create(n, 'y');
  });

  it('links: create, duplicate, list on both ends, GET memory carries them, delete', async () => {
    const body = { source_id: x, target_id: y, relation: 'reflects_on' };
    expect((await api(n.url, 'POST', '/api/v1/links', body)).status).toBe(201);
    expect((await api(n.url, 'POST', '/api/v1/links', body)).status).toBe(201);
    expect(await linksOn(n, x)).toHaveLength(1);
    expect(await linksOn(n, y)).toHaveLength(1);
    expect((await api(n.url, 'GET', `/api/v1/memories/${x}`)).json.links).toEqual([expect.objectContaining(body)]);
    expect((await api(n.url, 'DELETE', '/api/v1/links', body)).json).toEqual({ deleted: true });
    expect((await api(n.url, 'DELETE', '/api/v1/links', body)).json).toEqual({ deleted: false });
    expect(await linksOn(n, x)).toEqual([]);
  });

  it("links: a deleted memory's links are no longer served", async () => {
    const d = await create(n, 'to delete');
    expect((await api(n.url, 'POST', '/api/v1/links', { source_id: d, target_id: y })).status).toBe(201);
    expect((await linksOn(n, y)).map((l) => l.source_id)).toContain(d);
    expect((await api(n.url, 'DELETE', `/api/v1/memories/${d}`)).status).toBe(200);
    expect((await linksOn(n, y)).map((l) => l.source_id)).not.toContain(d);
    await n.db.database.sql`DELETE FROM memory_links WHERE source_id = ${d}`;
  });

  it('links: bad input is a 400 with a stable code; unknown memories are 404', async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ source_id: x, target_id: y, weight: 3 }, 400, 'UNKNOWN_FIELD'],
      [{ source_id: x, target_id: y, relation: 'likes' }, 400, 'INVALID_RELATION'],
      [{ source_id: x, target_id: x }, 400, 'SELF_LINK'],
      [{ source_id: 'a..b', target_id: y }, 400, 'INVALID_ID'],
      [{ target_id: y }, 400, 'INVALID_ID'],
      [{ source_id: 5, target_id: y }, 400, 'INVALID_BODY'],
      [[x, y], 400, 'INVALID_BODY'],
      [{ source_id: 'unknown-src', target_id: y }, 404, 'NOT_FOUND'],
      [{ source_id: x, target_id: 'unknown-dst' }, 404, 'NOT_FOUND'],
    ];
    for (const [body, code, tag] of cases) {
      const r = await api(n.url, 'POST', '/api/v1/links', body);
      expect([r.status, r.json?.code], JSON.stringify(body)).toEqual([code, tag]);
    }
    expect((await api(n.url, 'DELETE', '/api/v1/links', { source_id: x, target_id: y, relation: 'nope' })).json.code).toBe('INVALID_RELATION');
    expect((await api(n.url, 'GET', '/api/v1/links/unknown-id')).status).toBe(404);
    expect((await api(n.url, 'GET', '/api/v1/links/a..b')).json.code).toBe('INVALID_ID');
    expect(await n.db.database.sql`SELECT 1 FROM memory_links`).toHaveLength(1); // the removed reflects_on row only
  });

  it('archive/restore: happy path, list, update refused while archived, bad input, unknown ids', async () => {
    const z = await create(n, 'z');
    expect((await api(n.url, 'POST', '/api/v1/archive', { ids: [z], reason: 'stale' })).json).toMatchObject({ archived: [z], missing: [], count: 1, reason: 'stale' });
    expect((await api(n.url, 'POST', '/api/v1/archive', { ids: [z] })).json).toMatchObject({ archived: [], missing: [z] });
    const list = await api(n.url, 'GET', '/api/v1/archive?namespace=links/test');
    expect(list.json.count).toBe(1);
    expect(list.json.archived[0]).toMatchObject({ id: z, archived_at: expect.any(String), archive_reason: 'stale' });
    expect((await api(n.url, 'PUT', `/api/v1/memories/${z}`, { content: 'edit' })).status).toBe(404);
    expect((await api(n.url, 'GET', '/api/v1/memories')).json.memories.map((m: { id: string }) => m.id)).not.toContain(z);
    expect((await api(n.url, 'POST', `/api/v1/archive/${z}/restore`)).json).toEqual({ restored: true, id: z });
    expect((await api(n.url, 'POST', `/api/v1/archive/${z}/restore`)).status).toBe(404);
    expect((await api(n.url, 'POST', '/api/v1/archive/unknown-id/restore')).status).toBe(404);
    expect((await api(n.url, 'POST', '/api/v1/archive/a..b/restore')).json.code).toBe('INVALID_ID');
    for (const [body, tag] of [
      [{ ids: 'x' }, 'INVALID_BODY'],
      [{}, 'INVALID_BODY'],
      [{ ids: [x], extra: 1 }, 'INVALID_BODY'],
      [{ ids: ['a..b'] }, 'INVALID_ID'],
      [{ ids: Array.from({ length: 1001 }, (_, i) => `id-${i}`) }, 'BULK_TOO_LARGE'],
    ] as const) {
      const r = await api(n.url, 'POST', '/api/v1/archive', body);
      expect([r.status, r.json.code], JSON.stringify(body).slice(0, 80)).toEqual([400, tag]);
    }
    expect((await api(n.url, 'GET', '/api/v1/archive?limit=abc')).json.code).toBe('INVALID_QUERY');
    expect(await status(n, x)).toBe(200); // nothing changed by the refused requests
  });
});
