import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PeerClient, PeerRequestError } from '../../src/federation/client.js';
import { KeyRing } from '../../src/federation/keys.js';
import { createLogger } from '../../src/logger.js';
import { validateMemory, type Memory } from '../../src/memory/model.js';
import { formatTimestamp, nowMicros } from '../../src/memory/time.js';
import { createMetrics } from '../../src/metrics.js';
import { repairWithPeer, type RepairDeps } from '../../src/repair/run.js';
import { bucketDigests, rowKeys } from '../../src/store/repair-digests.js';
import { applyReplicated } from '../../src/store/replica.js';
import { cursorShowsLostHistory } from '../../src/repair/restore-detect.js';
import { FEED_START, feedHead } from '../../src/store/feed.js';
import type { AuditRecord } from '../../src/audit/events.js';
import { startMesh } from '../helpers/mesh.js';
import { newKeyDir, type TestNode } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';

/*
 * Two real nodes (Postgres, Redis, HTTP) with replication off (no push or catch-up worker),
 * so only repair moves rows: their databases are made to differ directly, then one repair
 * run from node-a must make them equal, sending exactly the differing rows.
 */
const DAY_US = 86_400_000_000;
const GRACE_MS = 30 * 86_400_000;
let a: TestNode;
let b: TestNode;
let keyDir: string;
let client: PeerClient;
const audit: AuditRecord[] = [];

const at = (offsetUs: number) => formatTimestamp(nowMicros() + offsetUs);
const mem = (id: string, updated: string, content = 'v1', extra: Record<string, unknown> = {}): Memory => validateMemory(wireMemory({ id, created_at: updated, updated_at: updated, content, ...extra }));
const put = (n: TestNode, memories: Memory[], tombstones: Array<{ id: string; deleted_at: string }> = []) => applyReplicated(n.db.database.db, { memories, tombstones, originPeer: null });
const peerB = () => ({ id: 'node-b', url: b.url });

function deps(over: Partial<RepairDeps> = {}): RepairDeps {
  return {
    db: a.db.database.db,
    client,
    nodeId: 'node-a',
    logger: createLogger('silent'),
    metrics: createMetrics({ nodeId: 'node-a', role: 'test', defaultMetrics: false }),
    audit: { record: (e) => void audit.push(e) },
    policy: null,
    clockSkewMs: 60_000,
    memoryMaxBytes: 1024 * 1024,
    tombstoneGraceMs: GRACE_MS,
    budgetMs: 60_000,
    pushBatchMax: 500,
    pushBatchMaxBytes: 8 * 1024 * 1024,
    ...over,
  };
}

/** Every visible row's LWW key, by id (what repair makes equal). */
const state = async (n: TestNode) => Object.fromEntries((await rowKeys(n.db.database.db, [''])).map((k) => [k.id, `${k.tomb ? 'T' : 'L'}${k.time}:${k.digest}`]));

beforeAll(async () => {
  keyDir = newKeyDir();
  // No push, catch-up or repair workers: nothing but the repair under test moves rows.
  const nodes = await startMesh(2, { keyDir, env: { WORKER_QUEUES: 'audit' } });
  [a, b] = [nodes[0]!, nodes[1]!];
  const keys = await KeyRing.load(keyDir, 'node-a');
  client = new PeerClient({ selfId: 'node-a', signingKey: keys.signingKey, apiKey: '', timeoutMs: 30_000 });
});
afterAll(async () => {
  await client?.close();
  await a?.destroy();
  await b?.destroy();
});

describe('anti-entropy repair between two memfed nodes', () => {
  it('converges diverged nodes in one run, sending only the rows that differ, both ways', async () => {
    const t0 = -DAY_US;
    const common = Array.from({ length: 300 }, (_, i) => mem(`common-${i}`, at(t0 + i)));
    await put(a, common);
    await put(b, common);
    // Differences: rows each side lacks, newer versions each side, a tombstone against a live row each way.
    await put(a, [mem('only-a-1', at(-1000)), mem('only-a-2', at(-999)), mem('only-a-3', at(-998))]);
    await put(b, [mem('only-b-1', at(-1000)), mem('only-b-2', at(-999))]);
    await put(b, [mem('common-1', at(-10), 'newer on b'), mem('common-2', at(-10), 'newer on b')]);
    await put(a, [mem('common-3', at(-10), 'newer on a')]);
    await put(a, [], [{ id: 'common-4', deleted_at: at(-5) }]);
    await put(b, [], [{ id: 'common-5', deleted_at: at(-5) }]);
    // Not differences: an expired row one side holds (absent for repair), and a one-sided
    // row older than TOMBSTONE_GRACE (reported, never sent: its delete may be forgotten).
    await put(a, [mem('expired-a', at(-DAY_US), 'gone', { tier: 'short', expires_at: at(-DAY_US / 2) })]);
    await put(a, [mem('ancient-a', formatTimestamp(nowMicros() - 40 * DAY_US))]);
    const bRows = await b.db.database.sql`SELECT count(*)::int AS n FROM memories`;

    // A small tree shape, so 300 rows go through every level (digests, narrowing, keys, rows).
    const r = await repairWithPeer(deps({ tuning: { topDepth: 1, leafRows: 4 } }), peerB(), 'operator');
    expect(r.incomplete).toBe(false);
    // pulled: only-b-1, only-b-2, common-1, common-2 (newer), common-5 (tombstone).
    expect(r.fetched).toBe(5);
    expect(r.pulled).toBe(5);
    // pushed: only-a-1..3, common-3 (newer), common-4 (tombstone).
    expect(r.pushed).toBe(5);
    expect(r.refused).toBe(0);
    expect(r.beyondGrace).toEqual({ local: 1, remote: 0, sample: ['ancient-a'] });
    expect(r.requests).toBeGreaterThan(3);

    const [sa, sb] = [await state(a), await state(b)];
    delete sa['ancient-a'];
    expect(sa).toEqual(sb);
    expect(Object.keys(sb)).toHaveLength(300 + 5);
    expect(sb['common-4']).toMatch(/^T/);
    expect(sb['common-5']).toMatch(/^T/);
    expect(sb['expired-a']).toBeUndefined();
    // b got exactly the three new rows (the others were updates of rows it had).
    const [after] = await b.db.database.sql`SELECT count(*)::int AS n FROM memories`;
    expect(after!.n).toBe(bRows[0]!.n + 3);
    // The repaired rows entered the feeds (so they flow on to other peers) with their origin.
    const [fromA] = await b.db.database.sql`SELECT count(*)::int AS n FROM change_feed WHERE origin_peer = 'node-a'`;
    expect(fromA!.n).toBe(5);
    expect(audit.find((e) => e.kind === 'repair.completed')?.details).toMatchObject({ peer: 'node-b', pulled: 5, pushed: 5 });
  });

  it('identical nodes compare in one request and exchange no rows', async () => {
    await a.db.database.sql`DELETE FROM memories WHERE id = 'ancient-a'`;
    expect(await bucketDigests(a.db.database.db, [''], 3)).toEqual(await bucketDigests(b.db.database.db, [''], 3));
    const r = await repairWithPeer(deps(), peerB(), 'schedule');
    expect(r).toMatchObject({ requests: 1, fetched: 0, pulled: 0, pushed: 0, rowsCompared: 0, incomplete: false });
  });

  it('refuses malformed, oversized, misaddressed and unsigned repair requests with a 4xx and changes nothing', async () => {
    const before = await state(b);
    const refused = async (body: Record<string, unknown>, peer = peerB()) => {
      const err = await client.repair(peer, body).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(PeerRequestError);
      return err as PeerRequestError;
    };
    const e1 = await refused({ op: 'dump' });
    expect([e1.status, e1.message]).toEqual([400, expect.stringContaining('INVALID_REPAIR')]);
    const e2 = await refused({ op: 'keys', prefixes: ['0a', 'f'] });
    expect([e2.status, e2.message]).toEqual([400, expect.stringContaining('one length')]);
    const e3 = await refused({ op: 'digests', prefixes: Array.from({ length: 300 }, (_, i) => i.toString(16).padStart(3, '0')), depth: 2 });
    expect(e3.status).toBe(400);
    const e4 = await refused({ op: 'rows', ids: ['x'], padding: 'p'.repeat(600 * 1024) });
    expect(e4.status).toBe(413);
    const e5 = await refused({ op: 'rows', ids: ['x'] }, { id: 'node-x', url: b.url });
    expect([e5.status, e5.message]).toEqual([403, expect.stringContaining('recipient_mismatch')]);
    const unsigned = await fetch(`${b.url}/api/v1/sync/repair`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-peer-id': 'node-a' }, body: JSON.stringify({ op: 'digests', prefixes: [''], depth: 1, sender_agent_id: 'node-a', recipient: 'node-b' }) });
    expect(unsigned.status).toBe(401);
    expect(await state(b)).toEqual(before);
  });

  it('after a restore, drops its own one-sided rows older than the grace horizon and takes the peer\'s', async () => {
    const ancient = formatTimestamp(nowMicros() - 40 * DAY_US);
    await put(a, [mem('ancient-mine', ancient)]);
    await put(b, [mem('ancient-theirs', ancient)]);
    const r = await repairWithPeer(deps(), peerB(), 'restored');
    expect(r).toMatchObject({ dropped: 1, pulled: 1, pushed: 0, beyondGrace: { local: 0, remote: 0 } });
    expect((await a.db.database.sql`SELECT id FROM memories WHERE id LIKE 'ancient-%'`).map((x) => x.id)).toEqual(['ancient-theirs']);
    expect(await state(a)).toEqual(await state(b));
  });

  it('tells a cursor into lost feed history from a live or a pruned one', async () => {
    const db = a.db.database.db;
    const head = await feedHead(db);
    expect(await cursorShowsLostHistory(db, FEED_START)).toBe(false);
    // The entry a peer was last served still exists: nothing lost.
    expect(await cursorShowsLostHistory(db, head)).toBe(false);
    // An entry this node never had (or no longer has) past entries it still has: lost.
    expect(await cursorShowsLostHistory(db, { txid: head.txid, seq: String(BigInt(head.seq) + 1000n) })).toBe(true);
    // Below every retained entry: pruned by retention, not lost.
    expect(await cursorShowsLostHistory(db, { txid: '1', seq: '1' })).toBe(false);
  });
});
