import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestNode, type TestNode } from '../helpers/node.js';

// Concurrent single creates share transactions (group commit); each answer still tells
// the truth about its own row.

describe('concurrent single-memory creates', () => {
  let n: TestNode;
  beforeAll(async () => {
    n = await startTestNode({ id: 'group-commit', role: 'api' });
  });
  afterAll(async () => {
    await n?.destroy();
  });

  it('commit in shared batches; each create of an id is answered 201 once and 409 after, with one feed row per row', async () => {
    const ids = Array.from({ length: 120 }, (_, i) => `gc-${i % 40}`); // every id three times
    const answers = await Promise.all(ids.map((id, i) => api(n.url, 'POST', '/api/v1/memories', { id, title: `t${i}`, content: 'c' })));
    for (let k = 0; k < 40; k++) {
      const mine = answers.filter((_, i) => ids[i] === `gc-${k}`).map((a) => a.status).sort();
      expect(mine, `gc-${k}`).toEqual([201, 409, 409]);
    }
    const [row] = await n.db.database.sql`SELECT (SELECT count(*) FROM memories)::int AS m, (SELECT count(*) FROM change_feed)::int AS f, (SELECT count(DISTINCT txid) FROM change_feed)::int AS tx`;
    expect(row).toMatchObject({ m: 40, f: 40 });
    // Fewer transactions than rows: creates were committed together.
    expect(row!.tx).toBeLessThan(40);
    const metrics = await (await fetch(`${n.url}/metrics`)).text();
    const batches = Number(/^memfed_write_batch_size_count\{[^}]*\} (\d+)$/m.exec(metrics)?.[1]);
    const rows = Number(/^memfed_write_batch_size_sum\{[^}]*\} (\d+)$/m.exec(metrics)?.[1]);
    // every create went through a batch (repeats included); fewer batches than creates
    expect(rows).toBe(120);
    expect(batches).toBeLessThan(120);
    const stored = await api(n.url, 'GET', '/api/v1/memories/gc-7');
    expect(stored.status).toBe(200);
    // the winner's content is the one that got the 201
    const winner = answers.find((a, i) => ids[i] === 'gc-7' && a.status === 201)!;
    expect(stored.json.memory.title).toBe(winner.json.title);
  });

  it('a shared batch whose COMMIT fails acknowledges none of its writes: only rows that then commit alone are answered 201, and every 201 is stored', async () => {
    const sql = n.db.database.sql;
    // Refuses a row at COMMIT (a deferred constraint trigger), after every statement of
    // the batch succeeded: the failure is the commit's own.
    await sql.unsafe(`
      CREATE FUNCTION refuse_doomed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.title LIKE 'doomed%' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER refuse_doomed AFTER INSERT ON memories DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_doomed();`);
    try {
      const before = await batchCounts();
      const titles = Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? `doomed ${i}` : `fine ${i}`));
      const answers = await Promise.all(titles.map((title) => api(n.url, 'POST', '/api/v1/memories', { title, content: 'c', namespace: 'gc-commit-fail' })));
      const after = await batchCounts();
      // Creates were gathered into shared batches (fewer batches than creates), so doomed rows shared commits with fine ones.
      expect(after.rows - before.rows).toBeGreaterThan(after.batches - before.batches);

      const stored = new Set((await sql`SELECT title FROM memories WHERE namespace = 'gc-commit-fail'`).map((r) => r.title as string));
      for (const [i, a] of answers.entries()) {
        if (titles[i]!.startsWith('doomed')) {
          expect(a.status, titles[i]).toBeGreaterThanOrEqual(500);
          expect(stored.has(titles[i]!), titles[i]).toBe(false);
        } else {
          // Acknowledged only after its own (retried) commit: every 201 is there.
          expect(a.status, titles[i]).toBe(201);
          expect(stored.has(titles[i]!), titles[i]).toBe(true);
        }
      }
      expect(stored.size).toBe(40);
      // No feed row for a row that was never committed.
      const [feed] = await sql`SELECT count(*)::int AS n FROM change_feed f JOIN memories m ON m.id = f.memory_id WHERE m.namespace = 'gc-commit-fail'`;
      expect(feed!.n).toBe(40);
    } finally {
      await sql.unsafe('DROP TRIGGER refuse_doomed ON memories; DROP FUNCTION refuse_doomed()');
    }
  });

  async function batchCounts(): Promise<{ batches: number; rows: number }> {
    const metrics = await (await fetch(`${n.url}/metrics`)).text();
    return {
      batches: Number(/^memfed_write_batch_size_count\{[^}]*\} (\d+)$/m.exec(metrics)?.[1] ?? 0),
      rows: Number(/^memfed_write_batch_size_sum\{[^}]*\} (\d+)$/m.exec(metrics)?.[1] ?? 0),
    };
  }
});
