import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../src/db/client.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { PrivatePostgres, privatePostgresAvailable } from '../helpers/private-postgres.js';
import { skipNote } from '../helpers/skip.js';

// Postgres stopped under a running node: its own cluster, so stopping it touches nobody else.
const missing = !privatePostgresAvailable();
const pg = new PrivatePostgres();
let n: TestNode;

beforeAll(async () => {
  if (missing) return;
  await pg.start();
  const url = await pg.createMigratedDatabase();
  const database = createDatabase(url, { max: 3 });
  n = await startTestNode({ id: 'pg-down', role: 'api', db: { name: 'memfed', url, database, drop: () => database.close() } });
}, 120_000);
afterAll(async () => {
  await n?.destroy();
  await pg.stop();
});

const post = (id: string) => fetch(`${n.url}/api/v1/memories`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id, title: 't', content: 'c' }) });

describe.skipIf(missing)(`Postgres unavailable${skipNote(missing, 'no Postgres 15 binaries (initdb, postgres) for a private cluster')}`, () => {
  it('answers 503 DATABASE_UNAVAILABLE with Retry-After while Postgres is down, changes nothing, and serves again once it is back', async () => {
    expect((await post('before-outage')).status).toBe(201);
    await pg.halt();
    try {
      for (const r of [await post('during-outage'), await fetch(`${n.url}/api/v1/memories/before-outage`), await fetch(`${n.url}/api/v1/memories`)]) {
        expect(r.status).toBe(503);
        expect(r.headers.get('retry-after')).toBe('1');
        expect(await r.json()).toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
      }
    } finally {
      await pg.resume();
    }
    // The pool reconnects by itself; the write refused during the outage was never stored.
    let back = 0;
    for (let i = 0; i < 50 && back !== 200; i++) {
      back = (await fetch(`${n.url}/api/v1/memories/before-outage`)).status;
      if (back !== 200) await new Promise((r) => setTimeout(r, 200));
    }
    expect(back).toBe(200);
    expect((await fetch(`${n.url}/api/v1/memories/during-outage`)).status).toBe(404);
    expect((await post('after-outage')).status).toBe(201);
  }, 60_000);
});
