import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Memory } from '../../src/memory/model.js';
import { waitFor } from '../helpers/env.js';
import { startMesh } from '../helpers/mesh.js';
import { api, newKeyDir, type TestNode } from '../helpers/node.js';
import { FakePeer, send } from '../helpers/peer.js';
import { prng } from '../helpers/prng.js';

/*
 * Months of operation in seconds: three nodes written and deleted continuously (long-tier
 * memories, and short-tier ones with a 4 s TTL), while the expiry sweep, tombstone GC and
 * change-feed retention run every half second (4 s grace, 2 s feed retention) and
 * anti-entropy repair every 2 s between every pair. Afterwards
 * the tombstone and feed tables are bounded by their windows, no deleted memory is live anywhere (not even when an old copy is pushed again
 * after its tombstone is gone), no expired memory is served, and every node holds the same
 * live set. Windows are set by env; the checks poll, so a loaded machine only slows them.
 */

const TTL_S = 4;
const GRACE_MS = 4000;
const WRITE_MS = 15_000;
const WRITE_MAX_MS = 90_000;
const MIN_EACH = 5;
// How far past the grace period a tombstone may live: GC ticks, and the slowest peer's
// cursor passing it, on a loaded machine.
const TOMBSTONE_SLACK_MS = 20_000;
const FEED_RETENTION_MS = 2000;
// The same for a feed entry: retention ticks and the slowest cursor passing it.
const FEED_SLACK_MS = 20_000;

const ENV = {
  SHORT_TTL_SECS: String(TTL_S),
  TOMBSTONE_GRACE_MS: String(GRACE_MS),
  FEED_RETENTION_MS: String(FEED_RETENTION_MS),
  RETENTION_INTERVAL_MS: '500',
  REPAIR_INTERVAL_MS: '2000',
  EXPIRY_SWEEP_INTERVAL_MS: '500',
  TOMBSTONE_GC_INTERVAL_MS: '500',
  EXPIRY_BATCH_MAX: '25',
  CATCHUP_INTERVAL_MS: '1000',
};

/** The ids a node serves (live, not expired) straight from its table, and its tombstones. */
async function liveIds(n: TestNode): Promise<string[]> {
  return (await n.db.database.sql`SELECT id FROM memories WHERE deleted_at IS NULL AND (expires_at IS NULL OR expires_at > now()) ORDER BY id`).map((r) => r.id as string);
}
async function tombstoneFigures(n: TestNode): Promise<{ count: number; oldestAgeMs: number; ids: string[] }> {
  const rows = await n.db.database.sql`SELECT id, (extract(epoch FROM now() - deleted_at) * 1000)::float8 AS age FROM memories WHERE deleted_at IS NOT NULL`;
  return { count: rows.length, oldestAgeMs: rows.reduce((m, r) => Math.max(m, Number(r.age)), 0), ids: rows.map((r) => r.id as string) };
}

/** The node's change feed: rows held, the age of the oldest, and rows pruned so far. */
async function feedFigures(n: TestNode): Promise<{ rows: number; oldestAgeMs: number; pruned: number }> {
  const [r] = await n.db.database.sql`SELECT count(*)::int AS rows, coalesce(max(extract(epoch FROM now() - committed_at) * 1000), 0)::float8 AS age, (SELECT coalesce(max(pruned_rows), 0) FROM feed_horizon)::float8 AS pruned FROM change_feed`;
  return { rows: r!.rows as number, oldestAgeMs: Number(r!.age), pruned: Number(r!.pruned) };
}

/** Every memory a node's list API serves, paged. */
async function served(n: TestNode): Promise<Memory[]> {
  const out: Memory[] = [];
  for (let offset = 0; ; offset += 500) {
    const r = await api(n.url, 'GET', `/api/v1/memories?limit=500&offset=${offset}`);
    expect(r.status, r.text).toBe(200);
    out.push(...(r.json.memories as Memory[]));
    if (r.json.memories.length < 500) return out;
  }
}

describe('long-running mesh: continuous writes and deletes under tier expiry, tombstone GC, feed retention and repair', () => {
  let nodes: TestNode[];
  let keyDir: string;
  let oldCopies: FakePeer;
  beforeAll(async () => {
    keyDir = newKeyDir();
    oldCopies = await new FakePeer('old-copies').init();
    oldCopies.enrolIn(keyDir);
    nodes = await startMesh(3, { env: ENV, keyDir });
  });
  afterAll(async () => {
    await Promise.all((nodes ?? []).map((n) => n.destroy()));
  });

  it('bounds tombstones and the feed by their windows, never resurrects a deleted memory, never serves an expired one, and converges', async () => {
    const rng = { next: prng(0x15e) };
    const longLive = new Map<string, TestNode>();
    const shortIds = new Set<string>();
    const deleteAttempted = new Set<string>();
    const deleted = new Map<string, Memory>();
    const violations: string[] = [];
    let maxTombstoneAgeMs = 0;
    let maxTombstones = 0;
    let maxFeedAgeMs = 0;
    let samples = 0;

    // The sampler: what every node serves is never expired; tombstones exist only for
    // deletes (the sweep replicates none) and never outlive the window.
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const n of nodes) {
          const askedAt = Date.now();
          for (const m of await served(n)) {
            if (m.expires_at && Date.parse(m.expires_at) <= askedAt) violations.push(`${n.id} served ${m.id}, expired at ${m.expires_at}`);
          }
          const t = await tombstoneFigures(n);
          maxTombstoneAgeMs = Math.max(maxTombstoneAgeMs, t.oldestAgeMs);
          maxTombstones = Math.max(maxTombstones, t.count);
          for (const id of t.ids) if (!deleteAttempted.has(id)) violations.push(`${n.id} holds a tombstone for ${id}, which was never deleted`);
          maxFeedAgeMs = Math.max(maxFeedAgeMs, (await feedFigures(n)).oldestAgeMs);
        }
        samples++;
        await new Promise((r) => setTimeout(r, 500));
      }
    })();

    const started = Date.now();
    let ops = 0;
    // At least WRITE_MS, and on a slow machine until the run has enough deletes and expiries to prove anything.
    const enough = () => deleted.size >= MIN_EACH && shortIds.size >= MIN_EACH;
    while ((Date.now() - started < WRITE_MS || !enough()) && Date.now() - started < WRITE_MAX_MS) {
      const n = nodes[ops % nodes.length]!;
      const roll = rng.next();
      ops++;
      if (roll < 0.35 || longLive.size < 5) {
        const r = await api(n.url, 'POST', '/api/v1/memories', { title: `long ${ops}`, content: `c ${ops}`, tier: 'long' });
        expect(r.status, r.text).toBe(201);
        longLive.set(r.json.id, n);
      } else if (roll < 0.65) {
        const r = await api(n.url, 'POST', '/api/v1/memories', { title: `short ${ops}`, content: `c ${ops}`, tier: 'short' });
        expect(r.status, r.text).toBe(201);
        shortIds.add(r.json.id);
      } else if (roll < 0.8) {
        // An update on the node that created it (a fresh id may not have reached the others yet).
        const ids = [...longLive.keys()];
        const id = ids[Math.floor(rng.next() * ids.length)]!;
        const r = await api(longLive.get(id)!.url, 'PUT', `/api/v1/memories/${id}`, { content: `updated ${ops}` });
        expect(r.status, r.text).toBe(200);
      } else {
        // Deletes: mostly long memories, sometimes a short one before (or after) it expires.
        const pickShort = rng.next() < 0.3 && shortIds.size > 0;
        const pool = pickShort ? [...shortIds] : [...longLive.keys()];
        const id = pool[Math.floor(rng.next() * pool.length)]!;
        const at = pickShort ? n : longLive.get(id)!;
        const before = await api(at.url, 'GET', `/api/v1/memories/${id}`);
        deleteAttempted.add(id);
        const r = await api(at.url, 'DELETE', `/api/v1/memories/${id}`);
        if (pickShort) {
          // A short memory may have expired (404: there is nothing left to delete) or not reached `n`.
          expect([200, 404]).toContain(r.status);
        } else {
          expect(r.status, r.text).toBe(200);
          longLive.delete(id);
        }
        // (The read before may have missed a row that arrived just before the delete.)
        if (r.status === 200) deleted.set(id, (before.json?.memory as Memory | undefined) ?? ({ id, tier: 'short' } as Memory));
      }
    }
    const writesEnded = Date.now();

    // Convergence: every node holds exactly the long memories not deleted (every short one
    // has expired), in its table and in what its API serves.
    const expected = [...longLive.keys()].sort();
    await waitFor(async () => {
      await new Promise((r) => setTimeout(r, 250));
      for (const n of nodes) if (JSON.stringify(await liveIds(n)) !== JSON.stringify(expected)) return false;
      return true;
    }, { timeoutMs: 90_000, what: 'every node to hold the same live set' });
    for (const n of nodes) expect((await served(n)).map((m) => m.id).sort()).toEqual(expected);

    // The windows pass: every tombstone is collected and every expired row swept, everywhere.
    await waitFor(async () => {
      for (const n of nodes) {
        const [r] = await n.db.database.sql`SELECT (SELECT count(*) FROM memories WHERE deleted_at IS NOT NULL)::int AS tombs, (SELECT count(*) FROM memories WHERE tier = 'short')::int AS shorts`;
        if (r!.tombs !== 0 || r!.shorts !== 0) return false;
      }
      return true;
    }, { timeoutMs: 90_000, what: 'tombstone GC and the expiry sweep to empty their windows on every node' });
    // And retention keeps the feed within its window (every peer's cursor has passed it all).
    await waitFor(async () => {
      for (const n of nodes) if ((await feedFigures(n)).oldestAgeMs > FEED_RETENTION_MS + FEED_SLACK_MS) return false;
      return true;
    }, { timeoutMs: 90_000, what: 'retention to keep every feed within its window' });
    sampling = false;
    await sampler;
    const feeds = await Promise.all(nodes.map(feedFigures));
    for (const f of feeds) expect(f.pruned).toBeGreaterThan(0);
    // Repair ran on every node all along (each run is an audit event), and found nothing
    // to drop: the nodes never held rows only one side had beyond the grace period.
    const repairs = await Promise.all(
      nodes.map(async (n) => (await n.db.database.sql`SELECT count(*)::int AS runs, count(*) FILTER (WHERE canonical::jsonb #> '{details,dropped}' IS NOT NULL)::int AS reported, coalesce(sum((canonical::jsonb #>> '{details,dropped}')::int), 0)::int AS dropped FROM audit_log WHERE kind = 'repair.completed'`)[0]!),
    );
    for (const r of repairs) {
      expect(r.runs).toBeGreaterThan(0);
      expect(r.reported).toBe(r.runs);
      expect(r.dropped).toBe(0);
    }

    // Old copies of deleted memories, pushed again after their tombstones are gone: refused everywhere.
    const copies = [...deleted.values()].filter((m) => m.tier === 'long').slice(0, 20);
    expect(copies.length).toBeGreaterThan(0);
    for (const n of nodes) {
      const r = await send(n.url, oldCopies.push({ sender_agent_id: 'old-copies', memories: copies }));
      expect(r.status).toBe(200);
      for (const res of r.json.results) {
        expect(res.status, `${n.id} ${res.id}`).toBe('skipped');
        expect(res.reason).toMatch(/^beyond_tombstone_grace: /);
      }
    }
    for (const n of nodes) {
      const live = new Set(await liveIds(n));
      for (const id of deleted.keys()) if (live.has(id)) violations.push(`${n.id} holds deleted ${id} live`);
      for (const id of shortIds) if ((await api(n.url, 'GET', `/api/v1/memories/${id}`)).status !== 404) violations.push(`${n.id} serves expired ${id}`);
      expect(JSON.stringify(await liveIds(n))).toBe(JSON.stringify(expected));
    }

    expect(violations).toEqual([]);
    // The run did what it claims: writes, deletes, expiries and tombstones, seen by the sampler.
    expect(samples).toBeGreaterThanOrEqual(3);
    expect(deleted.size).toBeGreaterThanOrEqual(MIN_EACH);
    expect(shortIds.size).toBeGreaterThanOrEqual(MIN_EACH);
    expect(maxTombstones).toBeGreaterThan(0);
    expect(maxTombstoneAgeMs).toBeLessThanOrEqual(GRACE_MS + TOMBSTONE_SLACK_MS);
    expect(maxFeedAgeMs).toBeLessThanOrEqual(FEED_RETENTION_MS + FEED_SLACK_MS);
    console.log(JSON.stringify({ ops, writeMs: writesEnded - started, settleMs: Date.now() - writesEnded, live: expected.length, deleted: deleted.size, short: shortIds.size, samples, maxTombstones, maxTombstoneAgeMs: Math.round(maxTombstoneAgeMs), maxFeedAgeMs: Math.round(maxFeedAgeMs), feedRows: feeds.map((f) => f.rows), feedPruned: feeds.map((f) => f.pruned), repairRuns: repairs.map((r) => r.runs) }));
  }, 300_000);
});
