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
});
