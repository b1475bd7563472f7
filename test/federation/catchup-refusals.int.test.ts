import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/events.js';
import { pullFromPeer, type CatchupDeps } from '../../src/federation/catchup.js';
import { reapplyRefusals } from '../../src/federation/catchup-reapply.js';
import { PeerClient } from '../../src/federation/client.js';
import { KeyRing, ensureOwnKey } from '../../src/federation/keys.js';
import { parsePolicy } from '../../src/governance.js';
import { createLogger } from '../../src/logger.js';
import { validateMemory } from '../../src/memory/model.js';
import { createMetrics } from '../../src/metrics.js';
import { recordRefusals } from '../../src/store/catchup-refusals.js';
import { applyReplicated } from '../../src/store/replica.js';
import { getWatermark } from '../../src/store/watermarks.js';
import { registerDatabaseCollectors } from '../../src/collectors.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL } from '../helpers/env.js';
import { newKeyDir } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';
import { spawnMemfed } from '../helpers/process.js';

/*
 * Catch-up runs driven from the test against a small ai-memory-style peer (the since form,
 * compared as strings the way upstream's sqlite store does: `updated_at > since` on text),
 * each against its own puller database.
 */
const SELF = 'refusal-puller';
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

/** An upstream-style since server over `rows` (string comparison, ascending updated_at, limit). */
async function sincePeer(rows: () => Array<Record<string, unknown>>): Promise<{ url: string; server: Server; asked: Array<string | null>; served: number[] }> {
  const asked: Array<string | null> = [];
  const served: number[] = [];
  const server = createServer((req, res) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    const since = q.get('since');
    asked.push(since);
    const limit = Math.min(Number(q.get('limit') ?? 500), 10_000);
    const page = rows()
      .filter((m) => since === null || String(m.updated_at) > since)
      .sort((a, b) => (String(a.updated_at) < String(b.updated_at) ? -1 : String(a.updated_at) > String(b.updated_at) ? 1 : 0))
      .slice(0, limit);
    served.push(page.length);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ count: page.length, limit, updated_since: since, latest_updated_at: page.at(-1)?.updated_at ?? null, memories: page }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  return { url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, server, asked, served };
}

type SincePeer = Awaited<ReturnType<typeof sincePeer>>;

/** A fresh database and a since peer over `rows`, for the describe block that calls it. */
function sinceFixture(rows: Array<Record<string, unknown>>): { readonly db: TestDatabase; readonly peer: SincePeer } {
  const f = {} as { db: TestDatabase; peer: SincePeer };
  beforeAll(async () => {
    f.db = await createTestDatabase();
    f.peer = await sincePeer(() => rows);
  });
  afterAll(async () => {
    await new Promise((r) => f.peer?.server.close(r));
    await f.db?.drop();
  });
  return f;
}

const ids = async (db: TestDatabase) => (await db.database.sql`SELECT id FROM memories WHERE deleted_at IS NULL ORDER BY id`).map((r) => r.id as string);
const refusals = async (db: TestDatabase) =>
  (await db.database.sql`SELECT memory_id, code, status, attempts, resolution, row FROM catchup_refusals ORDER BY id`) as unknown as Array<{ memory_id: string; code: string; status: string; attempts: number; resolution: string | null; row: string }>;
const counter = async (deps: CatchupDeps, name: 'catchupRefusals' | 'catchupReapplies', labels: Record<string, string>) =>
  (await deps.metrics[name].get()).values.find((v) => Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val))?.value ?? 0;

beforeAll(async () => {
  keyDir = newKeyDir();
  await ensureOwnKey(keyDir, SELF);
  const keys = await KeyRing.load(keyDir, SELF);
  client = new PeerClient({ selfId: SELF, signingKey: keys.signingKey, apiKey: '', timeoutMs: 20_000 });
});

describe('a since peer serving a row memfed refuses for good, between valid rows', () => {
  const rows = [
    wireMemory({ id: 'v-1', updated_at: '2026-10-01T00:00:01.000000+00:00' }),
    // an unknown tier: upstream's enum is short|mid|long too, so this stays refused
    wireMemory({ id: 'bad-tier', tier: 'eternal', updated_at: '2026-10-01T00:00:02.000000+00:00' }),
    wireMemory({ id: 'v-2', updated_at: '2026-10-01T00:00:03.000000+00:00' }),
    wireMemory({ id: 'v-3', updated_at: '2026-10-01T00:00:04.000000+00:00' }),
  ];
  const f = sinceFixture(rows);

  it('applies every later row, records the refused one as served, counts and audits it, and moves the watermark past it', async () => {
    const deps = depsFor(f.db);
    const r = await pullFromPeer(deps, { id: 'up-bad', url: f.peer.url }, 30_000);
    expect(r).toMatchObject({ mode: 'since', caughtUp: true, applied: 3 });
    expect(r.failedRow).toBeUndefined();
    expect(await ids(f.db)).toEqual(['v-1', 'v-2', 'v-3']);
    const [rec] = await refusals(f.db);
    expect(rec).toMatchObject({ memory_id: 'bad-tier', code: 'VALIDATION', status: 'pending', attempts: 1 });
    expect(JSON.parse(rec!.row)).toEqual(rows[1]);
    const wm = await getWatermark(f.db.database.db, 'up-bad');
    expect(wm.since).toBe('2026-10-01T00:00:04.000000+00:00');
    expect(wm.lastError).toBeNull();
    expect(await counter(deps, 'catchupRefusals', { peer: 'up-bad', reason: 'VALIDATION' })).toBe(1);
    expect(deps.events.filter((e) => e.kind === 'catchup.refused')).toEqual([
      expect.objectContaining({ actor: 'up-bad', details: expect.objectContaining({ count: 1, rows: [expect.objectContaining({ id: 'bad-tier', code: 'VALIDATION' })] }) }),
    ]);
    // the pending gauge, read from Postgres at scrape time
    registerDatabaseCollectors(deps.metrics, deps.db, ['up-bad']);
    expect(await deps.metrics.render()).toMatch(/memfed_catchup_refusals_pending\{peer="up-bad",node="refusal-puller",role="test",process="[^"]+"\} 1/);
    // the next pull starts past it and fetches nothing
    expect(await pullFromPeer(deps, { id: 'up-bad', url: f.peer.url }, 30_000)).toMatchObject({ applied: 0, caughtUp: true });
    expect(f.peer.served.at(-1)).toBe(0);
  });

  it('a re-apply of a row still refused keeps it pending with attempts+1', async () => {
    const deps = depsFor(f.db);
    expect(await reapplyRefusals(deps, { peerId: 'up-bad' })).toEqual({ taken: 1, applied: 0, superseded: 0, refused: 1 });
    expect((await refusals(f.db))[0]).toMatchObject({ status: 'pending', attempts: 2 });
    expect(await counter(deps, 'catchupReapplies', { peer: 'up-bad', outcome: 'refused' })).toBe(1);
  });
});

describe('a row with a timestamp from the future', () => {
  const rows = [
    wireMemory({ id: 'now-1', updated_at: '2026-10-02T00:00:01.000000+00:00' }),
    wireMemory({ id: 'from-future', updated_at: '2999-01-01T00:00:00.000000+00:00' }),
  ];
  const f = sinceFixture(rows);

  it('is recorded once (seen again, not re-counted), and the watermark never jumps ahead of the clock', async () => {
    const deps = depsFor(f.db);
    expect(await pullFromPeer(deps, { id: 'up-future', url: f.peer.url }, 30_000)).toMatchObject({ applied: 1, caughtUp: true });
    expect((await refusals(f.db))[0]).toMatchObject({ memory_id: 'from-future', code: 'FUTURE_TIMESTAMP', status: 'pending', attempts: 1 });
    expect((await getWatermark(f.db.database.db, 'up-future')).since).toBe('2026-10-02T00:00:01.000000+00:00');
    // a row written on the peer later (but before the future one) still arrives
    rows.push(wireMemory({ id: 'now-2', updated_at: '2026-10-02T00:00:02.000000+00:00' }));
    expect(await pullFromPeer(deps, { id: 'up-future', url: f.peer.url }, 30_000)).toMatchObject({ applied: 1, caughtUp: true });
    expect(await ids(f.db)).toEqual(['now-1', 'now-2']);
    expect((await refusals(f.db))[0]).toMatchObject({ status: 'pending', attempts: 2 });
    // counted and audited when first recorded, not on every pull that serves it again
    expect(await counter(deps, 'catchupRefusals', { peer: 'up-future', reason: 'FUTURE_TIMESTAMP' })).toBe(1);
    expect(deps.events.filter((e) => e.kind === 'catchup.refused')).toHaveLength(1);
  });
});

describe('watermarks as the peer wrote them', () => {
  const NS = '2026-12-02T10:00:00.123456789+00:00';
  const rows = [wireMemory({ id: 'ns-1', updated_at: '2026-12-02T10:00:00.000000001+00:00' }), wireMemory({ id: 'ns-2', updated_at: NS })];
  const f = sinceFixture(rows);

  it('keeps the raw nanosecond updated_at as `since`, so a second tick fetches nothing new', async () => {
    const deps = depsFor(f.db);
    expect(await pullFromPeer(deps, { id: 'up-ns', url: f.peer.url }, 30_000)).toMatchObject({ applied: 2, caughtUp: true });
    expect((await getWatermark(f.db.database.db, 'up-ns')).since).toBe(NS);
    expect(await pullFromPeer(deps, { id: 'up-ns', url: f.peer.url }, 30_000)).toMatchObject({ applied: 0, caughtUp: true });
    expect(f.peer.asked.at(-1)).toBe(NS);
    expect(f.peer.served.at(-1)).toBe(0);
  });
});

describe('a governance refusal, re-applied once the rule changes', () => {
  const POLICY = JSON.stringify({ peer_namespaces: { 'up-gov': ['shared/**'] } });
  const rows = [
    wireMemory({ id: 'g-ok', namespace: 'shared/a', updated_at: '2026-10-03T00:00:01.000000+00:00' }),
    wireMemory({ id: 'g-private', namespace: 'private/a', updated_at: '2026-10-03T00:00:02.000000+00:00' }),
    wireMemory({ id: 'g-newer-here', namespace: 'private/b', updated_at: '2026-10-03T00:00:03.000000+00:00' }),
    wireMemory({ id: 'g-ok-2', namespace: 'shared/b', updated_at: '2026-10-03T00:00:04.000000+00:00' }),
  ];
  const f = sinceFixture(rows);

  const cli = async (policy: string | null, ...args: string[]) => {
    const env = { NODE_ID: SELF, DATABASE_URL: f.db.url, REDIS_URL, FED_KEY_DIR: keyDir, FED_PEERS: `up-gov=${f.peer.url}`, LOG_LEVEL: 'warn', ...(policy ? { GOVERNANCE_POLICY: policy } : {}) };
    const p = spawnMemfed(['catchup', 'refusals', ...args], env);
    const code = await p.exited;
    return { code, out: p.output() };
  };

  it('records the refused rows, visible to the operator; re-apply under the same rule keeps them; under the changed rule resolves them (LWW: a newer version here wins)', async () => {
    const deps = depsFor(f.db, { policy: parsePolicy(POLICY, 'test') });
    expect(await pullFromPeer(deps, { id: 'up-gov', url: f.peer.url }, 30_000)).toMatchObject({ applied: 2, caughtUp: true });
    expect(await ids(f.db)).toEqual(['g-ok', 'g-ok-2']);
    expect((await refusals(f.db)).map((r) => [r.memory_id, r.code, r.status])).toEqual([
      ['g-private', 'GOVERNANCE_PEER_NAMESPACE', 'pending'],
      ['g-newer-here', 'GOVERNANCE_PEER_NAMESPACE', 'pending'],
    ]);
    expect(await counter(deps, 'catchupRefusals', { peer: 'up-gov', reason: 'GOVERNANCE_PEER_NAMESPACE' })).toBe(2);

    // the operator's view: the real CLI
    const list = await cli(null, 'list', '--peer', 'up-gov');
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^\d+\tpending\tup-gov\tg-private\tattempts=1\tGOVERNANCE_PEER_NAMESPACE\t/m);
    const json = JSON.parse((await cli(null, 'list', '--json')).out) as Array<{ memoryId: string; row: string }>;
    expect(JSON.parse(json[0]!.row)).toEqual(rows[1]);

    // still under the same policy: still refused, still pending, attempts+1; exit 1
    const again = await cli(POLICY, 'reapply', '--peer', 'up-gov');
    expect(again.code).toBe(1);
    expect(again.out).toContain('still refused 2');
    expect((await refusals(f.db)).map((r) => [r.status, r.attempts])).toEqual([
      ['pending', 2],
      ['pending', 2],
    ]);

    // meanwhile a newer version of one of them reached this node (say, by push)
    const newer = validateMemory(wireMemory({ id: 'g-newer-here', namespace: 'private/b', title: 'newer', updated_at: '2026-10-04T00:00:00.000000+00:00' }));
    await applyReplicated(f.db.database.db, { memories: [newer], tombstones: [], originPeer: 'someone' });

    // the rule changed (no policy any more): re-apply resolves both
    const ok = await cli(null, 'reapply');
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('applied 1, superseded 1, still refused 0');
    expect((await refusals(f.db)).map((r) => [r.memory_id, r.status, r.resolution])).toEqual([
      ['g-private', 'resolved', 'applied'],
      ['g-newer-here', 'resolved', 'superseded'],
    ]);
    expect(await ids(f.db)).toEqual(['g-newer-here', 'g-ok', 'g-ok-2', 'g-private']);
    const [kept] = await f.db.database.sql`SELECT doc->>'title' AS title FROM memories WHERE id = 'g-newer-here'`;
    expect(kept!.title).toBe('newer');
    // the operator's action is audited (the CLI writes to the audit outbox)
    const outbox = await f.db.database.sql`SELECT event->>'kind' AS kind, event->'details'->>'action' AS action FROM audit_outbox WHERE event->>'kind' = 'catchup.operator'`;
    expect(outbox.map((e) => e.action)).toEqual(['reapply', 'reapply']);
    // a pull after that changes nothing: resolved rows stay resolved
    expect(await pullFromPeer(depsFor(f.db), { id: 'up-gov', url: f.peer.url }, 30_000)).toMatchObject({ applied: 0 });
    expect((await refusals(f.db)).every((r) => r.status === 'resolved')).toBe(true);
  });
});

describe('re-apply of a refused deletion, and of a row without a usable id', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('a refused tombstone re-applied under a rule that allows it deletes the memory; a row with no valid id stays refused under a digest id', async () => {
    const deps = depsFor(db);
    await applyReplicated(db.database.db, { memories: [validateMemory(wireMemory({ id: 'to-delete', namespace: 'private/z' }))], tombstones: [], originPeer: null });
    const served = { id: 'to-delete', deleted_at: '2026-10-05T00:00:00.000000+00:00' };
    await recordRefusals(db.database.db, [{ peerId: 'up-t', memoryId: 'to-delete', lane: 'tombstones', row: served, code: 'GOVERNANCE_PEER_NAMESPACE', reason: 'not writable by up-t' }]);
    // still refused under the policy
    const strict = depsFor(db, { policy: parsePolicy(JSON.stringify({ peer_namespaces: { 'up-t': ['shared/**'] } }), 'test') });
    expect(await reapplyRefusals(strict, { peerId: 'up-t' })).toMatchObject({ refused: 1 });
    expect((await db.database.sql`SELECT deleted_at FROM memories WHERE id = 'to-delete'`)[0]!.deleted_at).toBeNull();
    // the rule is gone: the deletion applies at the peer's time
    expect(await reapplyRefusals(deps, { peerId: 'up-t' })).toEqual({ taken: 1, applied: 1, superseded: 0, refused: 0 });
    const [row] = await db.database.sql`SELECT deleted_at FROM memories WHERE id = 'to-delete'`;
    expect(new Date(row!.deleted_at as string).toISOString()).toBe('2026-10-05T00:00:00.000Z');
    expect((await refusals(db))[0]).toMatchObject({ status: 'resolved', resolution: 'applied', attempts: 2 });

    // a served row whose id is unusable: recorded under a digest of the row, never re-applicable as is
    const peer = await sincePeer(() => [wireMemory({ id: 'no spaces allowed', updated_at: '2026-10-05T00:00:01.000000+00:00' })]);
    try {
      expect(await pullFromPeer(deps, { id: 'up-id', url: peer.url }, 30_000)).toMatchObject({ caughtUp: true, applied: 0 });
    } finally {
      await new Promise((r) => peer.server.close(r));
    }
    const [rec] = await db.database.sql`SELECT memory_id, code FROM catchup_refusals WHERE peer_id = 'up-id'`;
    expect(rec!.memory_id).toMatch(/^sha256:[0-9a-f]{32}$/);
    expect(rec!.code).toBe('VALIDATION');
    expect(await reapplyRefusals(deps, { peerId: 'up-id' })).toMatchObject({ refused: 1 });
  });
});

describe('a since peer serving a row over MEMORY_MAX_BYTES', () => {
  const rows = [
    wireMemory({ id: 'small-1', updated_at: '2026-10-02T00:00:01.000000+00:00' }),
    // valid by every field rule; only the unknown key makes it large
    wireMemory({ id: 'huge', future_blob: 'x'.repeat(40 * 1024), updated_at: '2026-10-02T00:00:02.000000+00:00' }),
    wireMemory({ id: 'small-2', updated_at: '2026-10-02T00:00:03.000000+00:00' }),
  ];
  const f = sinceFixture(rows);

  it('records it in catchup_refusals as MEMORY_TOO_LARGE and passes it, never halting the page', async () => {
    const deps = depsFor(f.db, { memoryMaxBytes: 32 * 1024 });
    const r = await pullFromPeer(deps, { id: 'up-huge', url: f.peer.url }, 30_000);
    expect(r).toMatchObject({ mode: 'since', caughtUp: true, applied: 2 });
    expect(r.failedRow).toBeUndefined();
    expect(await ids(f.db)).toEqual(['small-1', 'small-2']);
    const [rec] = await refusals(f.db);
    expect(rec).toMatchObject({ memory_id: 'huge', code: 'MEMORY_TOO_LARGE', status: 'pending' });
    expect((await f.db.database.sql`SELECT reason FROM catchup_refusals WHERE memory_id = 'huge'`)[0]!.reason).toMatch(/at most 32768/);
    expect((await getWatermark(f.db.database.db, 'up-huge')).since).toBe('2026-10-02T00:00:03.000000+00:00');
    // a re-apply judges it by the same cap: still refused
    expect(await reapplyRefusals(deps, { peerId: 'up-huge' })).toMatchObject({ taken: 1, applied: 0, refused: 1 });
  });
});
