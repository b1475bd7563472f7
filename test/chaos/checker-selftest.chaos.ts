import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SetChecker, problems } from '../helpers/checker.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/*
 * The checker must not be vacuous: fed a history with every kind of anomaly planted by
 * hand (no memfed running), it reports each one.
 */
let x: TestDatabase, y: TestDatabase;
beforeAll(async () => {
  [x, y] = await Promise.all([createTestDatabase(), createTestDatabase()]);
});
afterAll(async () => {
  await Promise.all([x?.drop(), y?.drop()]);
});

async function row(db: TestDatabase, id: string, docId = id): Promise<void> {
  const doc = { id: docId, title: 't', content: 'c' };
  await db.database.sql`INSERT INTO memories (id, namespace, tier, title, tags, created_at, updated_at, version, digest, doc)
    VALUES (${id}, 'global', 'mid', 't', '{}', now(), now(), 1, 'd', ${JSON.stringify(doc)}::jsonb)`;
}
const feed = (db: TestDatabase, id: string, origin: string | null) => db.database.sql`INSERT INTO change_feed (memory_id, op, origin_peer) VALUES (${id}, 'upsert', ${origin})`;

describe('the set checker', () => {
  it('reports lost, unexpected, duplicate rows, duplicate applies, watermark violations and stuck cursors', async () => {
    const checker = new SetChecker('selftest', [
      { kind: 'memfed', id: 'x', sql: x.database.sql, peers: ['y'] },
      { kind: 'memfed', id: 'y', sql: y.database.sql, peers: ['x'] },
    ]);
    for (const id of ['w1', 'w2', 'w3']) checker.record({ id, node: 'x', outcome: 'acked' });
    checker.record({ id: 'w4', node: 'x', outcome: 'committed' });
    checker.record({ id: 'w5', node: 'x', outcome: 'unknown' });
    // x took w1..w5; y got w1 applied twice (duplicate apply), w2 fine, w3 and w4 never.
    for (const id of ['w1', 'w2', 'w3', 'w4', 'w5']) {
      await row(x, id);
      await feed(x, id, null);
    }
    await row(y, 'w1');
    await feed(y, 'w1', 'x');
    await feed(y, 'w1', 'x');
    await row(y, 'w2');
    await feed(y, 'w2', 'x');
    // An id nobody wrote, and a second row holding w2's document under another key.
    await row(y, 'ghost');
    await row(y, 'w2-copy', 'w2');
    // x's delivery cursor to y: first at a real position, then moved back (sampled), then
    // past the head of x's feed.
    const [head] = await x.database.sql`SELECT txid::text AS t, seq::text AS s FROM change_feed ORDER BY txid DESC, seq DESC LIMIT 1`;
    await x.database.sql`INSERT INTO peer_cursors (peer_id, txid, seq) VALUES ('y', ${head!.t}::xid8, ${head!.s}::bigint)`;
    checker.startSampling(20);
    await new Promise((r) => setTimeout(r, 150));
    await x.database.sql`UPDATE peer_cursors SET seq = seq - 1 WHERE peer_id = 'y'`;
    await new Promise((r) => setTimeout(r, 150));
    await x.database.sql`UPDATE peer_cursors SET seq = seq + 100 WHERE peer_id = 'y'`;
    // A catch-up watermark on x for y's feed at a position y's feed never had.
    await x.database.sql`INSERT INTO peer_watermarks (peer_id, cursor) VALUES ('y', 'v1.4000000000.1')`;

    const report = await checker.verify({ deadlineMs: 300 });
    const found = problems(report);
    const has = (re: RegExp) => expect(found.some((p) => re.test(p)), `${re} in\n${found.join('\n')}`).toBe(true);
    expect(report.converged).toBe(false);
    has(/did not converge/);
    has(/^y: lost acked 1 \[w3\]/);
    has(/^y: lost committed \(503\) 1 \[w4\]/);
    // w5 (unknown outcome) is on x, so all-or-nothing requires it on y too.
    has(/^y: missing ids other nodes hold 1 \[w5\]/);
    has(/^y: unexpected .*ghost/);
    has(/^y: duplicate rows .*"w2"/);
    has(/^y: duplicate applies 1: .*"w1"/);
    has(/^x: watermark violation: delivery cursor x->y went back/);
    has(/^x: watermark violation: delivery cursor x->y .* beyond feed head/);
    has(/^x: watermark violation: delivery cursor x->y passed 3 change\(s\) y never received/);
    has(/^x: watermark violation: catch-up watermark x<-y .* beyond y's feed head/);
    has(/^y: delivery cursors behind the feed head for x/);
    // Nothing invented about the clean parts.
    expect(found.some((p) => /^x: (lost|unexpected|duplicate)/.test(p))).toBe(false);
  });
});
