import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import type { Sql } from '../../src/db/client.js';
import { SetChecker, problems, type Expected, type Minimums, type Report } from '../helpers/checker.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { PG_ADMIN_URL, waitFor } from '../helpers/env.js';

/*
 * The checker the fault campaign relies on, proven in CI: each detection is fed a
 * constructed faulty history (rows planted by hand in two node databases, no memfed
 * running) and must report it, while the same history without the fault is clean.
 * Cursor and watermark regressions are caught between two explicit samples (no timers).
 */

const MIN: Minimums = { acked: 1, samples: 1 };
const T = (s: number) => `2026-01-01T00:00:${String(s).padStart(2, '0')}.000000Z`;

let open: TestDatabase[] = [];
afterEach(async () => {
  await Promise.all(open.map((d) => d.drop()));
  open = [];
});

interface Doc {
  id: string;
  content: string;
  version?: number;
  updated?: number;
  tags?: string[];
}
const docOf = (d: Doc) => ({ id: d.id, title: 't', content: d.content, tags: d.tags ?? [], namespace: 'global', tier: 'mid', version: d.version ?? 1, created_at: T(0), updated_at: T(d.updated ?? 1), metadata: {} });

/** One planted row (`key` differs from the doc id to plant an id drift). */
async function put(sql: Sql, d: Doc, opts: { key?: string; deletedAt?: number } = {}): Promise<void> {
  const doc = docOf(d);
  const deleted = opts.deletedAt === undefined ? null : T(opts.deletedAt);
  await sql`INSERT INTO memories (id, namespace, tier, title, tags, created_at, updated_at, deleted_at, version, digest, doc)
    VALUES (${opts.key ?? d.id}, 'global', 'mid', 't', ${sql.array(doc.tags)}::text[], ${doc.created_at}, ${doc.updated_at}, ${deleted}, ${doc.version}, ${`dg-${d.content}`}, ${JSON.stringify(doc)}::jsonb)
    ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at, deleted_at = excluded.deleted_at, version = excluded.version, digest = excluded.digest, doc = excluded.doc`;
}
const feed = (sql: Sql, id: string, origin: string | null, op: 'upsert' | 'delete' = 'upsert') => sql`INSERT INTO change_feed (memory_id, op, origin_peer) VALUES (${id}, ${op}, ${origin})`;

async function head(sql: Sql): Promise<{ t: string; s: string }> {
  const [h] = await sql<Array<{ t: string; s: string }>>`SELECT txid::text AS t, seq::text AS s FROM change_feed ORDER BY txid DESC, seq DESC LIMIT 1`;
  return h ?? { t: '0', s: '0' };
}
async function cursorAt(sql: Sql, peer: string, p: { t: string; s: string }): Promise<void> {
  await sql`INSERT INTO peer_cursors (peer_id, txid, seq) VALUES (${peer}, ${p.t}::xid8, ${p.s}::bigint)
    ON CONFLICT (peer_id) DO UPDATE SET txid = excluded.txid, seq = excluded.seq`;
}

interface World {
  x: Sql;
  y: Sql;
  checker: SetChecker;
  /** Writes `d` on x (local feed row) and applies it on y (feed row from x); records the outcome. */
  replicate(d: Doc, outcome?: 'acked' | 'committed'): Promise<void>;
  /** Both delivery cursors at their feed heads (a caught-up cluster). */
  caughtUp(): Promise<void>;
}

const fields = (d: Doc): Expected => ({ deleted: false, fields: { content: d.content } });

/** Two node databases x and y and a checker over them. */
async function world(name: string): Promise<World> {
  const [dx, dy] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  open.push(dx, dy);
  const x = dx.database.sql;
  const y = dy.database.sql;
  const checker = new SetChecker(name, [
    { kind: 'memfed', id: 'x', sql: x, peers: ['y'] },
    { kind: 'memfed', id: 'y', sql: y, peers: ['x'] },
  ]);
  return {
    x,
    y,
    checker,
    async replicate(d, outcome = 'acked') {
      checker.record({ id: d.id, node: 'x', outcome, op: (d.version ?? 1) > 1 ? 'update' : 'create', expect: fields(d) });
      await put(x, d);
      await feed(x, d.id, null);
      await put(y, d);
      await feed(y, d.id, 'x');
    },
    async caughtUp() {
      await cursorAt(x, 'y', await head(x));
      await cursorAt(y, 'x', await head(y));
    },
  };
}

/** A clean two-id history, caught up, sampled once. */
async function cleanWorld(name: string): Promise<World> {
  const w = await world(name);
  await w.replicate({ id: 'w1', content: 'one' });
  await w.replicate({ id: 'w2', content: 'two' });
  await w.caughtUp();
  await w.checker.sample();
  return w;
}

/**
 * The checker's convergence and stuck-cursor checks see only feed rows below the
 * server-wide horizon; another test's open transaction can hold it back for a while.
 * Wait for that positive signal (every planted row visible), then verify once.
 */
async function verify(c: SetChecker): Promise<Report> {
  for (const sql of [...open.map((d) => d.database.sql)]) {
    await waitFor(async () => !(await sql<Array<{ above: boolean }>>`SELECT EXISTS (SELECT 1 FROM change_feed WHERE txid >= pg_snapshot_xmin(pg_current_snapshot())) AS above`)[0]!.above, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'planted feed rows below the horizon',
    });
  }
  return c.verify({ deadlineMs: 0, intervalMs: 1 });
}
function expectFinding(report: Report, re: RegExp, min: Minimums = MIN): string[] {
  const found = problems(report, min);
  expect(found.some((p) => re.test(p)), `${re} in\n${found.join('\n')}`).toBe(true);
  return found;
}

describe('the history checker', () => {
  it('reports a clean, caught-up history as clean (no false positives)', async () => {
    const w = await cleanWorld('clean');
    const report = await verify(w.checker);
    expect(report.converged).toBe(true);
    expect(problems(report, MIN)).toEqual([]);
  });

  it('reports a vacuous run: fewer acknowledged writes or samples than the test demands', async () => {
    const w = await cleanWorld('vacuous');
    const found = problems(await verify(w.checker), { acked: 3, samples: 50 });
    expect(found.some((p) => /only 2 acknowledged write\(s\), the test needs at least 3/.test(p)), found.join('\n')).toBe(true);
    expect(found.some((p) => /checker sample\(s\), the test needs at least 50/.test(p)), found.join('\n')).toBe(true);
  });

  it('counts and reports its own failed samples: a run the checker could not look at is not clean', async () => {
    const w = await cleanWorld('sample-errors');
    // A node view on a database without memfed's tables: every sample of it throws.
    const broken = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
    try {
      const checker = new SetChecker('sample-errors', [
        { kind: 'memfed', id: 'x', sql: w.x, peers: ['y'] },
        { kind: 'memfed', id: 'y', sql: broken as unknown as Sql, peers: ['x'] },
      ]);
      checker.record({ id: 'w1', node: 'x', outcome: 'acked', expect: { deleted: false, fields: { content: 'one' } } });
      await checker.sample();
      const report = await verify(checker);
      expect(report.sampleErrors).toBeGreaterThan(0);
      expectFinding(report, /checker sample\(s\) or poll\(s\) failed: sample of y: .*peer_cursors/, { acked: 1, samples: 0 });
    } finally {
      await broken.end();
    }
  });

  it('reports an acked write missing on a node as lost, a committed (503) one as lost committed', async () => {
    const w = await cleanWorld('lost');
    for (const [id, outcome] of [['w3', 'acked'], ['w4', 'committed']] as const) {
      w.checker.record({ id, node: 'x', outcome, expect: fields({ id, content: id }) });
      await put(w.x, { id, content: id });
      await feed(w.x, id, null);
    }
    const report = await verify(w.checker);
    expect(report.converged).toBe(false);
    expectFinding(report, /^y: lost acked 1 \[w3\]/);
    expectFinding(report, /^y: lost committed \(503\) 1 \[w4\]/);
    expectFinding(report, /did not converge/);
  });

  it('reports an acked update a node never applied (it holds the older version) as lost', async () => {
    const w = await cleanWorld('lost-update');
    w.checker.record({ id: 'w1', node: 'x', outcome: 'acked', op: 'update', expect: fields({ id: 'w1', content: 'one v2' }) });
    await put(w.x, { id: 'w1', content: 'one v2', version: 2, updated: 5 });
    await feed(w.x, 'w1', null);
    const report = await verify(w.checker);
    expectFinding(report, /^y: lost acked 1 \[w1\]/);
    expectFinding(report, /diverged between nodes: .*"w1"/);
  });

  it('reports an unknown-outcome write that reached one node only as partial (all or nothing)', async () => {
    const w = await cleanWorld('partial');
    w.checker.record({ id: 'w5', node: 'x', outcome: 'unknown', expect: fields({ id: 'w5', content: 'five' }) });
    await put(w.x, { id: 'w5', content: 'five' });
    await feed(w.x, 'w5', null);
    expectFinding(await verify(w.checker), /^y: missing ids other nodes hold 1 \[w5\]/);
  });

  it('reports rows of ids nobody wrote as unexpected, and a refused write as a problem', async () => {
    const w = await cleanWorld('unexpected');
    await put(w.y, { id: 'ghost', content: 'nobody wrote me' });
    w.checker.record({ id: 'bad', node: 'x', outcome: 'refused' });
    const report = await verify(w.checker);
    expectFinding(report, /^y: unexpected 1 \[ghost\]/);
    expectFinding(report, /1 write\(s\) refused with a 4xx/);
  });

  it('reports extra local change rows (a node recording a peer\'s write as its own) as duplicate applies', async () => {
    const w = await cleanWorld('extra-local');
    await feed(w.y, 'w1', null);
    await w.caughtUp();
    expectFinding(await verify(w.checker), /^y: duplicate applies 1: .*"id":"w1".*"local":1/);
  });

  it('reports two rows holding one document, and a row keyed apart from its doc id (the id-drift query)', async () => {
    const w = await cleanWorld('dup-rows');
    await put(w.y, { id: 'w2', content: 'two' }, { key: 'w2-copy' });
    const report = await verify(w.checker);
    const y = report.nodes.find((n) => n.node === 'y')!;
    expect(y.duplicateRows).toContainEqual({ id: 'w2', rows: 2 });
    expect(y.duplicateRows).toContainEqual({ id: 'w2-copy', rows: -1 });
    expectFinding(report, /^y: duplicate rows /);
  });

  it('the id-drift query alone catches a single row stored under another key than its doc id', async () => {
    const w = await cleanWorld('id-drift');
    await put(w.y, { id: 'drifted-doc', content: 'x' }, { key: 'drift-key' });
    const y = (await verify(w.checker)).nodes.find((n) => n.node === 'y')!;
    expect(y.duplicateRows).toEqual([{ id: 'drift-key', rows: -1 }]);
  });

  it('allows one apply per version with several versions per id, and reports a version applied twice', async () => {
    const w = await cleanWorld('dup-applies');
    // w1 updated once on x: two versions, so two applies on y are fine.
    await w.replicate({ id: 'w1', content: 'one v2', version: 2, updated: 5 });
    await w.caughtUp();
    const clean = await verify(w.checker);
    expect(problems(clean, MIN)).toEqual([]);
    // The second version applied again (a re-sent push not seen as an LWW no-op).
    const w2 = await cleanWorld('dup-applies-2');
    await w2.replicate({ id: 'w1', content: 'one v2', version: 2, updated: 5 });
    await feed(w2.y, 'w1', 'x');
    await w2.caughtUp();
    expectFinding(await verify(w2.checker), /^y: duplicate applies 1: .*"id":"w1","applies":3,"allowed":2/);
  });

  it('reports documents that differ in any field between nodes, even with the expected content', async () => {
    const w = await cleanWorld('divergence');
    await put(w.y, { id: 'w1', content: 'one', tags: ['drift'] });
    const report = await verify(w.checker);
    expect(report.converged).toBe(false);
    expectFinding(report, /1 id\(s\) diverged between nodes: .*"w1"/);
  });

  it('reports a deleted id that is live on a node as resurrected', async () => {
    const w = await cleanWorld('resurrect');
    w.checker.record({ id: 'w1', node: 'x', outcome: 'acked', op: 'delete' });
    await put(w.x, { id: 'w1', content: 'one' }, { deletedAt: 9 });
    await feed(w.x, 'w1', null, 'delete');
    // y never took the tombstone (or an older copy brought the memory back).
    const report = await verify(w.checker);
    expectFinding(report, /^y: resurrected deleted 1 \[w1\]/);
    // A re-create refused by the tombstone (409) leaves the id deleted: clean once y has it.
    const w2 = await cleanWorld('recreate-refused');
    w2.checker.record({ id: 'w1', node: 'x', outcome: 'acked', op: 'delete' });
    w2.checker.record({ id: 'w1', node: 'x', outcome: 'conflict', op: 'recreate', expect: fields({ id: 'w1', content: 'back' }) });
    for (const sql of [w2.x, w2.y]) {
      await put(sql, { id: 'w1', content: 'one' }, { deletedAt: 9 });
      await feed(sql, 'w1', sql === w2.x ? null : 'x', 'delete');
    }
    await w2.caughtUp();
    expect(problems(await verify(w2.checker), MIN)).toEqual([]);
  });

  it('reports a delivery cursor going backwards between two samples', async () => {
    const w = await cleanWorld('cursor-back');
    await w.x`UPDATE peer_cursors SET seq = seq - 1 WHERE peer_id = 'y'`;
    await w.checker.sample();
    await w.caughtUp();
    expectFinding(await verify(w.checker), /^x: watermark violation: delivery cursor x->y went back/);
  });

  it('reports a catch-up cursor watermark going backwards, and one beyond the pulled peer\'s feed head', async () => {
    const w = await cleanWorld('watermark-back');
    const h = await head(w.x);
    await w.y`INSERT INTO peer_watermarks (peer_id, cursor) VALUES ('x', ${`v1.${h.t}.${h.s}`})`;
    await w.checker.sample();
    await w.y`UPDATE peer_watermarks SET cursor = ${`v1.${h.t}.${BigInt(h.s) - 1n}`} WHERE peer_id = 'x'`;
    await w.checker.sample();
    const report = await verify(w.checker);
    expectFinding(report, /^y: watermark violation: catch-up watermark y<-x went back from/);
    // Clean up to the head again: no finding about a position that exists.
    expect(problems(report, MIN).filter((p) => /beyond/.test(p))).toEqual([]);
    await w.y`UPDATE peer_watermarks SET cursor = 'v1.4000000000.1' WHERE peer_id = 'x'`;
    expectFinding(await verify(w.checker), /^y: watermark violation: catch-up watermark y<-x .* beyond x's feed head/);
  });

  it('checks since-form (upstream `since` timestamp) watermarks: going backwards, and beyond the newest updated_at', async () => {
    const w = await cleanWorld('since');
    await w.y`INSERT INTO peer_watermarks (peer_id, since) VALUES ('x', ${T(1)})`;
    await w.checker.sample();
    const clean = await verify(w.checker);
    expect(problems(clean, MIN)).toEqual([]);
    const w2 = await cleanWorld('since-back');
    await w2.y`INSERT INTO peer_watermarks (peer_id, since) VALUES ('x', ${T(1)})`;
    await w2.checker.sample();
    await w2.y`UPDATE peer_watermarks SET since = ${T(0)} WHERE peer_id = 'x'`;
    await w2.checker.sample();
    expectFinding(await verify(w2.checker), /^y: watermark violation: catch-up since-watermark y<-x went back from 2026-01-01T00:00:01/);
    const w3 = await cleanWorld('since-beyond');
    await w3.y`INSERT INTO peer_watermarks (peer_id, since) VALUES ('x', ${T(30)})`;
    expectFinding(await verify(w3.checker), /^y: watermark violation: catch-up since-watermark y<-x 2026-01-01T00:00:30\.000000Z beyond the newest updated_at x serves/);
  });

  it('reports a delivery cursor beyond its own feed head, and a cursor behind the head as stuck', async () => {
    const w = await cleanWorld('cursor-beyond');
    await w.x`UPDATE peer_cursors SET seq = seq + 100 WHERE peer_id = 'y'`;
    await w.y`UPDATE peer_cursors SET txid = '0'::xid8, seq = 0 WHERE peer_id = 'x'`;
    const report = await verify(w.checker);
    expectFinding(report, /^x: watermark violation: delivery cursor x->y .* beyond feed head/);
    expectFinding(report, /^y: delivery cursors behind the feed head for x/);
  });

  it('reports a cursor that passed a version its peer does not hold, seen between two samples and at the end', async () => {
    const w = await cleanWorld('cursor-skip');
    // x takes a new version of w1; its cursor to y moves past it; y still holds version 1.
    w.checker.record({ id: 'w1', node: 'x', outcome: 'acked', op: 'update', expect: fields({ id: 'w1', content: 'one v2' }) });
    await put(w.x, { id: 'w1', content: 'one v2', version: 2, updated: 5 });
    await feed(w.x, 'w1', null);
    await w.caughtUp();
    await w.checker.sample();
    const report = await verify(w.checker);
    expectFinding(report, /^x: watermark violation: delivery cursor x->y passed 1 change\(s\) y never received \(seen while running\): w1/);
    expectFinding(report, /^x: watermark violation: delivery cursor x->y passed 1 change\(s\) y never received: w1/);
  });

  it('exempts a row in the DLQ from the cursor-skip check, and only that row (no false positives, no blind spot)', async () => {
    const w = await cleanWorld('dlq-exempt');
    for (const id of ['p1', 'p2']) {
      w.checker.record({ id, node: 'x', outcome: 'committed', expect: fields({ id, content: id }) });
      await put(w.x, { id, content: id });
      await feed(w.x, id, null);
    }
    // y refused p1 (dead-lettered on x); p2 was simply never delivered.
    await w.x`INSERT INTO federation_push_dlq (peer_id, memory_id, op, payload, failure_class, last_error)
      VALUES ('y', 'p1', 'upsert', ${JSON.stringify({ id: "p1" })}::jsonb, 'permanent', 'refused by y')`;
    await w.caughtUp();
    const x = (await verify(w.checker)).nodes.find((n) => n.node === 'x')!;
    const skips = x.watermarkViolations.filter((v) => /passed/.test(v));
    // Reported (by the final sample and the end-of-run check), each time naming p2 alone.
    expect(skips).toContain('delivery cursor x->y passed 1 change(s) y never received: p2');
    expect(skips.filter((v) => !/ passed 1 change\(s\) y never received.*: p2$/.test(v))).toEqual([]);
  });
});
