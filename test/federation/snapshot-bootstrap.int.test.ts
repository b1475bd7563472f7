import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/events.js';
import type { Config } from '../../src/config.js';
import { pullFromPeer, type CatchupDeps } from '../../src/federation/catchup.js';
import { PeerClient, PeerRequestError } from '../../src/federation/client.js';
import { KeyRing, ensureOwnKey } from '../../src/federation/keys.js';
import { runRetention } from '../../src/federation/retention.js';
import { encodeSnapshotToken } from '../../src/federation/snapshot.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { encodeCursor } from '../../src/store/feed.js';
import { readHorizon } from '../../src/store/retention.js';
import { getWatermark } from '../../src/store/watermarks.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';

/*
 * Snapshot bootstrap of a cursor puller, against a real node (HTTP, Postgres): the node's
 * feed is pruned past the puller's cursor, the puller is told so (410 resync_required),
 * pages through the snapshot while a writer keeps writing, and then follows the feed
 * with nothing lost. Retention runs are driven from the test (short windows, entries aged
 * by hand) so each step is observable.
 */
let keyDir: string;
let source: TestNode;
const clients = new Map<string, PeerClient>();

const RULES: Config['retention'] = { feedRetentionMs: 1000, maxLagMs: 2000, snapshotTtlMs: 60_000, intervalMs: 600_000, batch: 7, maxBatches: 1000 };
const sourcePeer = () => ({ id: source.id, url: source.url, flavour: 'memfed' as const });

function depsFor(self: string, db: TestDatabase, over: Partial<CatchupDeps> = {}): CatchupDeps & { events: AuditRecord[] } {
  const events: AuditRecord[] = [];
  return { db: db.database.db, client: clients.get(self)!, logger: createLogger('silent'), metrics: createMetrics({ nodeId: self, role: 'test', defaultMetrics: false }), pageLimit: 500, policy: null, audit: { record: (e) => events.push(e) }, clockSkewMs: 300_000, events, ...over };
}

const write = async (title: string) => {
  const r = await api(source.url, 'POST', '/api/v1/memories', { title, content: title, tier: 'long', namespace: 'snap/test' });
  expect(r.status).toBe(201);
  return r.json.id as string;
};
const update = async (id: string, content: string) => expect((await api(source.url, 'PUT', `/api/v1/memories/${id}`, { content })).status).toBe(200);
const remove = async (id: string) => expect((await api(source.url, 'DELETE', `/api/v1/memories/${id}`)).status).toBe(200);
/** Everything a node holds: id, content digest, tombstone time. */
// (A tombstone keeps its own row's last digest locally, a replicated one has none: compare the deletion time.)
const stateOf = async (db: TestDatabase) => (await db.database.sql`SELECT id, CASE WHEN deleted_at IS NULL THEN digest END AS digest, deleted_at::text AS deleted_at FROM memories ORDER BY id`).map((r) => `${r.id}|${r.digest ?? ''}|${r.deleted_at ?? ''}`);
const feedRows = async () => (await source.db.database.sql`SELECT count(*)::int AS n FROM change_feed`)[0]!.n as number;
/**
 * Makes every feed entry of the source older than the lag bound, then prunes until at
 * most `keep` entries are left: a run only sees entries below the cluster-wide snapshot
 * xmin, so a transaction open elsewhere on the shared server can hold part back a while.
 */
async function ageAndPrune(peerIds: string[], keep = 0) {
  await source.db.database.sql`UPDATE change_feed SET committed_at = committed_at - interval '1 hour'`;
  const total = { deleted: 0, batches: 0 };
  const deadline = Date.now() + 30_000;
  do {
    const r = await runRetention({ db: source.db.database.db, logger: createLogger('silent'), metrics: createMetrics({ nodeId: 'x', role: 'test', defaultMetrics: false }), settings: RULES }, peerIds);
    total.deleted += r.deleted;
    total.batches += r.batches;
    if ((await feedRows()) <= keep) break;
    await new Promise((res) => setTimeout(res, 200));
  } while (Date.now() < deadline);
  return total;
}
/** Pulls until the puller holds what the source holds (or the deadline passes). */
async function converge(deps: CatchupDeps, db: TestDatabase) {
  const want = await stateOf(source.db);
  await waitFor(async () => {
    await pullFromPeer(deps, sourcePeer(), 20_000);
    return JSON.stringify(await stateOf(db)) === JSON.stringify(want);
  }, { timeoutMs: 60_000, intervalMs: 300, what: 'puller converged with the source' }).catch(() => undefined);
}
const counter = async (deps: CatchupDeps, name: 'snapshotBootstraps' | 'snapshotPages', labels: Record<string, string>) =>
  (await deps.metrics[name].get()).values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k as keyof typeof v.labels] === val)).reduce((a, v) => a + v.value, 0);

beforeAll(async () => {
  keyDir = newKeyDir();
  for (const id of ['puller', 'puller-two']) {
    await ensureOwnKey(keyDir, id);
    clients.set(id, new PeerClient({ selfId: id, signingKey: (await KeyRing.load(keyDir, id)).signingKey, apiKey: '', timeoutMs: 10_000 }));
  }
  // The source pushes to nobody and runs no retention of its own: the test drives both.
  source = await startTestNode({ id: 'snap-source', keyDir, peers: [{ id: 'puller', url: 'http://127.0.0.1:9' }, { id: 'puller-two', url: 'http://127.0.0.1:9' }], env: { WORKER_QUEUES: 'audit' } });
}, 60_000);
afterAll(async () => {
  for (const c of clients.values()) await c.close();
  await source?.destroy();
});

describe('change-feed retention and snapshot bootstrap (cursor pullers)', () => {
  let puller: TestDatabase;
  beforeAll(async () => {
    puller = await createTestDatabase();
  });
  afterAll(async () => puller?.drop());

  it('a puller inside the retained feed is served as before; pruning past its cursor then answers 410 resync_required, and the upstream since form still serves every row', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push(await write(`early ${i}`));
    for (const id of ids.slice(0, 5)) await remove(id);
    const deps = depsFor('puller', puller);
    const first = await pullFromPeer(deps, sourcePeer(), 20_000);
    expect(first.caughtUp).toBe(true);
    const wmBefore = await getWatermark(puller.database.db, source.id);

    // More writes the puller has not read yet, then the source prunes everything (the
    // puller is no push peer whose cursor would hold it; its cursor there is 0, beyond the lag bound).
    for (let i = 0; i < 10; i++) ids.push(await write(`late ${i}`));
    const run = await ageAndPrune(['puller', 'puller-two']);
    expect(run.deleted).toBe(55);
    expect(run.batches).toBeGreaterThanOrEqual(8); // 55 rows in batches of 7
    expect((await source.db.database.sql`SELECT count(*)::int AS n FROM change_feed`)[0]!.n).toBe(0);

    const err = await clients.get('puller')!.since(sourcePeer(), { cursor: wmBefore.cursor!, limit: '100' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeerRequestError);
    expect((err as PeerRequestError).status).toBe(410);
    expect((err as PeerRequestError).code).toBe('RESYNC_REQUIRED');
    expect((err as PeerRequestError).message).toContain(encodeCursor(await readHorizon(source.db.database.db)));
    // A cursor at the horizon itself missed nothing.
    const at = (await clients.get('puller')!.since(sourcePeer(), { cursor: encodeCursor(await readHorizon(source.db.database.db)), limit: '100' })) as { memories: unknown[]; has_more: boolean };
    expect(at.memories).toEqual([]);
    // Upstream pullers read the memories table: unaffected by pruning.
    const since = (await clients.get('puller')!.since(sourcePeer(), { since: '2000-01-01T00:00:00Z', limit: '1000' })) as { memories: Array<{ id: string }> };
    expect(since.memories).toHaveLength(45);
  });

  it('the puller then bootstraps from the snapshot, its cursor set to the snapshot position, and holds exactly what the source holds', async () => {
    const deps = depsFor('puller', puller, { pageLimit: 6 });
    // A run stops at its budget: on a loaded machine the bootstrap may take more than one.
    for (let i = 0; i < 10; i++) {
      const r = await pullFromPeer(deps, sourcePeer(), 30_000);
      expect(r.failedRow).toBeUndefined();
      if ((await getWatermark(puller.database.db, source.id)).snapshotCursor === null) break;
    }
    expect(await counter(deps, 'snapshotBootstraps', { outcome: 'started' })).toBe(1);
    expect(await counter(deps, 'snapshotBootstraps', { outcome: 'completed' })).toBe(1);
    expect(await counter(deps, 'snapshotPages', { direction: 'applied' })).toBeGreaterThanOrEqual(8); // 50 rows, 6 a page
    expect(deps.events.some((e) => e.kind === 'feed.bootstrap')).toBe(true);
    const wm = await getWatermark(puller.database.db, source.id);
    expect(wm.snapshotCursor).toBeNull();
    expect(wm.snapshotToken).toBeNull();
    expect(wm.cursor).toBe(encodeCursor(await readHorizon(source.db.database.db)));
    await converge(deps, puller);
    expect(await stateOf(puller)).toEqual(await stateOf(source.db));
    // ...and follows the feed from there.
    const id = await write('after the bootstrap');
    await waitFor(async () => {
      await pullFromPeer(deps, sourcePeer(), 20_000);
      return (await puller.database.sql`SELECT 1 FROM memories WHERE id = ${id}`).length === 1;
    }, { timeoutMs: 60_000, intervalMs: 300, what: 'the write after the bootstrap pulled' });
  });

  it('a writer creating, updating and deleting while the snapshot is paged loses nothing: after the feed is read from the snapshot position both hold the same rows', async () => {
    const fresh = await createTestDatabase();
    try {
      const ids = (await source.db.database.sql`SELECT id FROM memories WHERE deleted_at IS NULL ORDER BY id`).map((r) => r.id as string);
      await ageAndPrune(['puller', 'puller-two']);
      const deps = depsFor('puller-two', fresh, { pageLimit: 2 });
      let done = false;
      let writes = 0;
      const writer = (async () => {
        // Until the bootstrap ends and at least 20 writes: new rows (ids sort anywhere in
        // the copy), updates and deletes of rows the copy has or has not reached yet.
        for (let i = 0; (!done && writes < 80) || writes < 20; i++) {
          if (i % 3 === 0) await write(`during ${i}`);
          else if (i % 3 === 1) await update(ids[i % ids.length]!, `changed during ${i}`);
          else if (ids.length > 10) await remove(ids.pop()!);
          writes++;
        }
      })();
      let r = await pullFromPeer(deps, sourcePeer(), 60_000);
      for (let i = 0; i < 10 && !r.failedRow && (await getWatermark(fresh.database.db, source.id)).snapshotCursor !== null; i++) r = await pullFromPeer(deps, sourcePeer(), 60_000);
      done = true;
      await writer;
      expect(r.failedRow).toBeUndefined();
      expect(await counter(deps, 'snapshotBootstraps', { outcome: 'completed' })).toBe(1);
      // Follow the feed until both agree (a commit is served once it is below the
      // cluster-wide snapshot xmin, which a transaction open elsewhere can hold back).
      await converge(deps, fresh);
      expect(await stateOf(fresh)).toEqual(await stateOf(source.db));
    } finally {
      await fresh.drop();
    }
  });

  it('a snapshot in progress keeps the feed after its position from being pruned (beyond the lag bound too); once idle past its TTL it no longer does', async () => {
    const client = clients.get('puller-two')!;
    const page = (await client.snapshot(sourcePeer(), { limit: '1' })) as { snapshot_cursor: string; next_token: string };
    const ids = [await write('after snapshot start 1'), await write('after snapshot start 2')];
    await source.db.database.sql`DELETE FROM feed_snapshots WHERE holder <> 'serve:puller-two'`;
    await ageAndPrune(['puller', 'puller-two'], 2);
    expect((await source.db.database.sql`SELECT memory_id FROM change_feed ORDER BY txid, seq`).map((r) => r.memory_id)).toEqual(ids);
    const next = (await client.snapshot(sourcePeer(), { token: page.next_token, limit: '1' })) as { snapshot_cursor: string };
    expect(next.snapshot_cursor).toBe(page.snapshot_cursor);
    // Idle past its TTL: pruned past, and its token is refused.
    await source.db.database.sql`UPDATE feed_snapshots SET touched_at = now() - interval '2 minutes'`;
    await ageAndPrune(['puller', 'puller-two']);
    expect((await source.db.database.sql`SELECT count(*)::int AS n FROM change_feed`)[0]!.n).toBe(0);
    const err = await client.snapshot(sourcePeer(), { token: page.next_token, limit: '1' }).catch((e: unknown) => e);
    expect([(err as PeerRequestError).status, (err as PeerRequestError).code]).toEqual([410, 'SNAPSHOT_EXPIRED']);
  });

  it('a hostile or invalid page token is a 400 INVALID_SNAPSHOT_TOKEN; a well-formed token of no live snapshot, or of another peer, is 410 SNAPSHOT_EXPIRED; nothing is changed', async () => {
    const before = await source.db.database.sql`SELECT holder, snapshot_id, touched_at::text FROM feed_snapshots ORDER BY holder`;
    for (const token of ['garbage', 's1.x.y', `s1.${'0'.repeat(36)}.YQ`, `s1.0b7c6f1e-9d5a-4c1b-8e7f-2a3b4c5d6e7f.${'A'.repeat(5000)}`, "s1.0b7c6f1e-9d5a-4c1b-8e7f-2a3b4c5d6e7f.YQ'; DROP TABLE memories; --"]) {
      const err = await clients.get('puller')!.snapshot(sourcePeer(), { token, limit: '5' }).catch((e: unknown) => e);
      expect([(err as PeerRequestError).status, (err as PeerRequestError).code], token.slice(0, 60)).toEqual([400, 'INVALID_SNAPSHOT_TOKEN']);
    }
    const err = await clients.get('puller')!.snapshot(sourcePeer(), { token: encodeSnapshotToken('0b7c6f1e-9d5a-4c1b-8e7f-2a3b4c5d6e7f', 'a'), limit: '5' }).catch((e: unknown) => e);
    expect([(err as PeerRequestError).status, (err as PeerRequestError).code]).toEqual([410, 'SNAPSHOT_EXPIRED']);
    // puller-two's live snapshot: its token does nothing for puller.
    const mine = (await clients.get('puller-two')!.snapshot(sourcePeer(), { limit: '1' })) as { next_token: string };
    const stolen = await clients.get('puller')!.snapshot(sourcePeer(), { token: mine.next_token, limit: '5' }).catch((e: unknown) => e);
    expect([(stolen as PeerRequestError).status, (stolen as PeerRequestError).code]).toEqual([410, 'SNAPSHOT_EXPIRED']);
    // The refused requests touched nothing: the caller's own snapshot row (if any) is as it was.
    const after = await source.db.database.sql`SELECT holder, snapshot_id, touched_at::text FROM feed_snapshots WHERE holder = 'serve:puller'`;
    expect(after).toEqual(before.filter((r) => r.holder === 'serve:puller'));
    // Unsigned: refused before anything is read.
    const unsigned = await api(source.url, 'GET', '/api/v1/sync/snapshot?peer=puller&limit=1');
    expect(unsigned.status).toBe(401);
  });
});
