import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/events.js';
import { pullFromPeer, type CatchupDeps } from '../../src/federation/catchup.js';
import { PeerClient, PeerRequestError } from '../../src/federation/client.js';
import { KeyRing, ensureOwnKey } from '../../src/federation/keys.js';
import { createLogger } from '../../src/logger.js';
import { validateMemory } from '../../src/memory/model.js';
import { createMetrics } from '../../src/metrics.js';
import { encodeCursor } from '../../src/store/feed.js';
import { applyReplicated } from '../../src/store/replica.js';
import { WatermarkMoved, getWatermark } from '../../src/store/watermarks.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

/*
 * Catch-up runs (pullFromPeer) driven from the test, each against its own puller database,
 * so every page a run asks for and everything it applies is observable.
 */
const SELF = 'puller';
let keyDir: string;
let client: PeerClient;

function depsFor(db: TestDatabase, over: Partial<CatchupDeps> = {}): CatchupDeps & { events: AuditRecord[] } {
  const events: AuditRecord[] = [];
  return {
    db: db.database.db,
    client,
    logger: createLogger('silent'),
    metrics: createMetrics({ nodeId: SELF, role: 'test', defaultMetrics: false }),
    pageLimit: 500,
    policy: null,
    audit: { record: (e) => events.push(e) },
    clockSkewMs: 300_000,
    events,
    ...over,
  };
}
const pulls = async (deps: CatchupDeps, peer: string, outcome: string) => (await deps.metrics.catchupPulls.get()).values.find((v) => v.labels.peer === peer && v.labels.outcome === outcome)?.value ?? 0;

/** A small HTTP peer whose GET /api/v1/sync/since answers are written by the test. */
async function fakePeer(answer: (q: URLSearchParams, req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; queries: URLSearchParams[] }> {
  const queries: URLSearchParams[] = [];
  const server = createServer((req, res) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    queries.push(q);
    answer(q, req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  return { url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, server, queries };
}
const json = (res: ServerResponse, body: unknown) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

beforeAll(async () => {
  keyDir = newKeyDir();
  await ensureOwnKey(keyDir, SELF);
  const keys = await KeyRing.load(keyDir, SELF);
  client = new PeerClient({ selfId: SELF, signingKey: keys.signingKey, apiKey: '', timeoutMs: 20_000 });
});

describe('tombstones pulled by cursor', () => {
  let source: TestNode;
  let db: TestDatabase;
  beforeAll(async () => {
    source = await startTestNode({ id: 'src-tomb', keyDir });
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await source?.destroy();
    await db?.drop();
  });

  it('a delete on the peer arrives by catch-up and deletes the memory here, at the peer\'s deletion time', async () => {
    const deps = depsFor(db);
    const peer = { id: 'src-tomb', url: source.url };
    const row = async (id: string) => (await db.database.sql`SELECT deleted_at FROM memories WHERE id = ${id}`)[0];
    await api(source.url, 'POST', '/api/v1/memories/bulk', [{ id: 'tomb-1', title: 'a', content: 'x' }, { id: 'tomb-2', title: 'b', content: 'x' }]);
    // (other files' open transactions can hold the feed horizon back for a moment: pull until seen)
    await waitFor(async () => (await pullFromPeer(deps, peer, 30_000)) && (await row('tomb-1')) && (await row('tomb-2')), { what: 'both memories pulled' });
    expect((await api(source.url, 'DELETE', '/api/v1/memories/tomb-1')).status).toBe(200);
    // an id this node never saw: created and deleted on the peer between two pulls
    await api(source.url, 'POST', '/api/v1/memories', { id: 'tomb-never', title: 'c', content: 'x' });
    await api(source.url, 'DELETE', '/api/v1/memories/tomb-never');
    const pulledDeletion = async () => {
      const r = await pullFromPeer(deps, peer, 30_000);
      return r.caughtUp && (await row('tomb-1'))?.deleted_at && (await row('tomb-never'))?.deleted_at ? r : undefined;
    };
    const result = await waitFor(pulledDeletion, { what: 'the deletions pulled' });
    expect(result.mode).toBe('cursor');
    const [src1] = await source.db.database.sql`SELECT deleted_at FROM memories WHERE id = 'tomb-1'`;
    expect((await row('tomb-1'))!.deleted_at).toEqual(src1!.deleted_at);
    expect((await row('tomb-2'))!.deleted_at).toBeNull();
    // the unseen id is kept as a tombstone, so an older copy arriving later stays deleted
    const old = validateMemory(wireMemory({ id: 'tomb-never', updated_at: '2026-01-01T00:00:00.000000+00:00' }));
    expect((await applyReplicated(db.database.db, { memories: [old], tombstones: [], originPeer: 'someone' })).noop).toEqual(['tomb-never']);
    expect((await row('tomb-never'))!.deleted_at).not.toBeNull();
    // the deletion is audited like a pushed one
    const deleted = deps.events.filter((e) => e.kind === 'memory.deleted').flatMap((e) => e.details.ids as string[]);
    expect(deleted).toEqual(expect.arrayContaining(['tomb-1', 'tomb-never']));
    expect(deps.events.find((e) => e.kind === 'memory.deleted')).toMatchObject({ actor: 'src-tomb', details: { via: 'catchup' } });
  });
});

describe('page size', () => {
  let db: TestDatabase;
  let peer: Awaited<ReturnType<typeof fakePeer>>;
  const rows = Array.from({ length: 100 }, (_, i) => wireMemory({ id: `big-${String(i).padStart(3, '0')}`, updated_at: `2026-08-01T00:00:${String(Math.floor(i / 10)).padStart(2, '0')}.${String(i % 10).padStart(6, '0')}+00:00` }));
  const PAD = 'x'.repeat(9 * 1024 * 1024);
  let alwaysTooLarge = false;
  beforeAll(async () => {
    db = await createTestDatabase();
    // An ai-memory-style peer (since form) whose pages of more than 40 rows exceed the 8 MiB a puller accepts.
    peer = await fakePeer((q, _req, res) => {
      const limit = Number(q.get('limit'));
      if (alwaysTooLarge || limit > 40) return json(res, { memories: [], pad: PAD });
      const since = q.get('since');
      const page = rows.filter((m) => since === null || String(m.updated_at) > since).slice(0, limit);
      json(res, { count: page.length, limit, memories: page, latest_updated_at: page.at(-1)?.updated_at ?? null });
    });
  });
  afterAll(async () => {
    await new Promise((r) => peer?.server.close(r));
    await db?.drop();
  });

  it('shrinks the page on an oversize response (a quarter each time) and keeps the smaller page for the run', async () => {
    const deps = depsFor(db, { pageLimit: 500 });
    const r = await pullFromPeer(deps, { id: 'big-peer', url: peer.url }, 60_000);
    expect(r).toMatchObject({ mode: 'since', caughtUp: true, applied: 100 });
    const limits = peer.queries.map((q) => Number(q.get('limit')));
    expect(limits.slice(0, 3)).toEqual([500, 125, 31]);
    expect(limits.slice(3).every((l) => l === 31)).toBe(true);
    // 100 rows in pages of 31: four pages
    expect(limits.slice(2)).toHaveLength(4);
    const [{ n }] = (await db.database.sql`SELECT count(*)::int AS n FROM memories`) as unknown as [{ n: number }];
    expect(n).toBe(100);
    expect((await getWatermark(db.database.db, 'big-peer')).since).toBe(rows.at(-1)!.updated_at);
  });

  it('gives up with a too-large error at a page of one row, leaving the watermark where it was', async () => {
    alwaysTooLarge = true;
    try {
      const deps = depsFor(db, { pageLimit: 500 });
      const before = await getWatermark(db.database.db, 'big-peer');
      peer.queries.length = 0;
      const err = await pullFromPeer(deps, { id: 'big-peer', url: peer.url }, 60_000).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PeerRequestError);
      expect((err as PeerRequestError).tooLarge).toBe(true);
      expect(peer.queries.map((q) => Number(q.get('limit')))).toEqual([500, 125, 31, 7, 1]);
      const after = await getWatermark(db.database.db, 'big-peer');
      expect({ cursor: after.cursor, since: after.since }).toEqual({ cursor: before.cursor, since: before.since });
    } finally {
      alwaysTooLarge = false;
    }
  });
});

describe('since form: more rows on one updated_at than the largest page', () => {
  let db: TestDatabase;
  let upstream: UpstreamReceiver;
  const TS = '2026-09-09T09:09:09.000000+00:00';
  beforeAll(async () => {
    db = await createTestDatabase();
    upstream = await new UpstreamReceiver('crowded', keyDir).start();
    upstream.serve = [
      ...Array.from({ length: 10_001 }, (_, i) => wireMemory({ id: `same-${String(i).padStart(5, '0')}`, updated_at: TS, content: 'c', title: 't' })),
      wireMemory({ id: 'after-crowd', updated_at: '2026-09-09T09:09:10.000000+00:00' }),
    ];
  });
  afterAll(async () => {
    await upstream?.stop();
    await db?.drop();
  });

  it('asks once for the upstream maximum, then counts a boundary_skip and moves on (the rest can only arrive by push)', async () => {
    const deps = depsFor(db, { pageLimit: 500 });
    const r = await pullFromPeer(deps, { id: 'crowded', url: upstream.url }, 120_000);
    expect(r).toMatchObject({ mode: 'since', caughtUp: true });
    const asked = upstream.sinceRequests.map((q) => new URLSearchParams(q));
    expect(asked.map((q) => q.get('limit'))).toEqual(['500', '10000', '10000']);
    expect(asked[2]!.get('since')).toBe(TS);
    expect(await pulls(deps, 'crowded', 'boundary_skip')).toBe(1);
    const [{ n }] = (await db.database.sql`SELECT count(*)::int AS n FROM memories WHERE id LIKE 'same-%'`) as unknown as [{ n: number }];
    expect(n).toBe(10_000);
    // the one row past the largest page (in the peer's id order) is the one skipped
    expect((await db.database.sql`SELECT 1 FROM memories WHERE id = 'same-10000'`).length).toBe(0);
    expect((await db.database.sql`SELECT 1 FROM memories WHERE id = 'after-crowd'`).length).toBe(1);
  });
});

describe('two catch-up runs for one peer at once', () => {
  let db: TestDatabase;
  let peer: Awaited<ReturnType<typeof fakePeer>>;
  const pageA = Array.from({ length: 50 }, (_, i) => wireMemory({ id: `race-a-${i}` }));
  const pageB = Array.from({ length: 20 }, (_, i) => wireMemory({ id: `race-b-${i}` }));
  const cursorA = encodeCursor({ txid: '1000', seq: '50' });
  const cursorB = encodeCursor({ txid: '2000', seq: '20' });
  const page = (rows: Array<Record<string, unknown>>, txid: string, next: string, hasMore = false) => ({
    count: rows.length,
    memories: rows,
    tombstones: [],
    entries: rows.map((m, i) => ({ id: m.id, cursor: encodeCursor({ txid, seq: String(i + 1) }) })),
    next_cursor: next,
    has_more: hasMore,
    remaining: hasMore ? 20 : 0,
  });
  let held: Array<() => void> = [];
  beforeAll(async () => {
    db = await createTestDatabase();
    // A memfed-style peer (cursor form) that answers a first page only once two requests for it are in:
    // both runs have then read the same watermark and hold the same page.
    peer = await fakePeer((q, _req, res) => {
      const cursor = q.get('cursor');
      if (cursor === cursorA) return json(res, page(pageB, '2000', cursorB));
      if (cursor === cursorB) return json(res, page([], '2000', cursorB));
      held.push(() => json(res, page(pageA, '1000', cursorA, true)));
      if (held.length === 2) {
        for (const answer of held) answer();
        held = [];
      }
    });
  });
  afterAll(async () => {
    await new Promise((r) => peer?.server.close(r));
    await db?.drop();
  });

  it('only one advances the watermark; the other rolls back; nothing is applied twice or skipped', async () => {
    const deps = depsFor(db);
    const target = { id: 'racer', url: peer.url };
    const [a, b] = await Promise.allSettled([pullFromPeer(deps, target, 60_000), pullFromPeer(deps, target, 60_000)]);
    const won = [a, b].filter((x) => x.status === 'fulfilled');
    const lost = [a, b].filter((x): x is PromiseRejectedResult => x.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.reason).toBeInstanceOf(WatermarkMoved);
    // the winner went on from page A to page B and caught up
    expect((won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof pullFromPeer>>>).value).toMatchObject({ mode: 'cursor', caughtUp: true, applied: 70 });
    expect((await getWatermark(db.database.db, 'racer')).cursor).toBe(cursorB);
    // both runs asked for page A, and both looked ahead at page B while applying it; the
    // loser's look-ahead is dropped with its run (the feed below: nothing applied twice)
    const cursors = peer.queries.map((q) => q.get('cursor'));
    expect(cursors.filter((c) => c === encodeCursor({ txid: '0', seq: '0' }))).toHaveLength(2);
    expect(cursors.filter((c) => c === cursorA).length).toBeGreaterThanOrEqual(1);
    expect(cursors.filter((c) => c === cursorA).length).toBeLessThanOrEqual(2);
    // every row stored, and applied (a change-feed row) exactly once
    const feed = await db.database.sql`SELECT memory_id, count(*)::int AS n FROM change_feed GROUP BY memory_id`;
    expect(feed).toHaveLength(70);
    expect(feed.every((r) => r.n === 1)).toBe(true);
    const [{ n }] = (await db.database.sql`SELECT count(*)::int AS n FROM memories WHERE deleted_at IS NULL`) as unknown as [{ n: number }];
    expect(n).toBe(70);
    // a later run starts from the winner's watermark
    peer.queries.length = 0;
    expect(await pullFromPeer(deps, target, 60_000)).toMatchObject({ caughtUp: true, applied: 0 });
    expect(peer.queries.map((q) => q.get('cursor'))).toEqual([cursorB]);
  });
});
