import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNewMemory } from '../../src/memory/input.js';
import { nowMicros } from '../../src/memory/time.js';
import { FEED_START, comparePositions, decodeCursor, encodeCursor, feedHead, readFeed, type FeedPosition } from '../../src/store/feed.js';
import { insertMemories } from '../../src/store/memories.js';
import { createDatabase, type Database } from '../../src/db/client.js';
import { PG_ADMIN_URL, waitFor } from '../helpers/env.js';
import { PrivatePostgres, privatePostgresAvailable } from '../helpers/private-postgres.js';
import { skipNote } from '../helpers/skip.js';

// This file holds a transaction open on purpose. The feed horizon is the snapshot xmin,
// which is cluster-wide: on the shared cluster that would stall the change feed of every
// node of every test file running meanwhile. So it runs on a Postgres cluster of its own.
const pg = new PrivatePostgres();
let t: { url: string; database: Database };
beforeAll(async () => {
  if (!privatePostgresAvailable()) return;
  await pg.start();
  const url = await pg.createMigratedDatabase();
  t = { url, database: createDatabase(url, { max: 5 }) };
}, 120_000);
afterAll(async () => {
  await t?.database.close();
  await pg.stop();
});

const mem = (title: string) => buildNewMemory({ title, content: 'c' }, { agentId: 'test', nowMicros: nowMicros() });

describe.skipIf(!privatePostgresAvailable())(`change feed order is commit order${skipNote(!privatePostgresAvailable(), 'no Postgres 15 binaries (initdb, postgres) for a private cluster')}`, () => {
  it('never hands out a position behind a change that commits later', async () => {
    const db = t.database.db;
    await insertMemories(db, [mem('before')]);
    // A cluster of this file's own: nothing else holds the horizon back.
    const start = (await readFeed(db, FEED_START, 1000)).at(-1)!;
    expect(start).toBeDefined();

    // A second connection opens a transaction, writes a change (it gets a seq and txid
    // first) and stays open while later transactions commit.
    const holder = postgres(t.url, { max: 1, onnotice: () => {} });
    // The held transaction is on this file's own cluster, never the shared one.
    const [{ port }] = (await holder`SELECT inet_server_port() AS port`) as unknown as [{ port: number }];
    expect(port).toBe(pg.port);
    expect(port).not.toBe(Number(new URL(PG_ADMIN_URL).port || 5432));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let wrote!: (seq: string) => void;
    const written = new Promise<string>((r) => (wrote = r));
    const held = holder.begin(async (tx) => {
      // Take an xid before the later writers so the held change sorts first.
      await tx`SELECT pg_current_xact_id()`;
      const [row] = await tx`INSERT INTO change_feed (memory_id, op) VALUES ('held-open', 'upsert') RETURNING seq::text AS seq`;
      wrote(row!.seq);
      await released;
    });
    const heldSeq = await Promise.race([written, held.then(() => Promise.reject(new Error('the holding transaction ended early')))]);

    await insertMemories(db, [mem('later-1')]);
    await insertMemories(db, [mem('later-2')]);

    // While the early transaction is open, a reader sees none of the later commits:
    // serving them would move a cursor past the held change.
    try {
      const during = await readFeed(db, start, 1000);
      expect(during.map((e) => e.memoryId)).toEqual([]);
      expect(comparePositions(await feedHead(db), start)).toBe(0);
    } finally {
      release();
      await held;
      await holder.end();
    }

    const after = await waitFor(async () => {
      const rows = await readFeed(db, start, 1000);
      return rows.length === 3 ? rows : undefined;
    }, { what: 'all three changes visible' });
    expect(after.map((e) => e.memoryId)).toContain('held-open');
    expect(after).toHaveLength(3);
    // The held change comes first: its txid is older than the later commits'.
    expect(after[0]!.memoryId).toBe('held-open');
    expect(after[0]!.seq).toBe(heldSeq);
    for (let i = 1; i < after.length; i++) expect(comparePositions(after[i - 1]!, after[i]!)).toBeLessThan(0);
  });

  it('a reader paging with a cursor sees every row exactly once under concurrent writers', async () => {
    const db = t.database.db;
    let cursor: FeedPosition = await feedHead(db);
    const seen = new Map<string, number>();
    let writing = true;
    const writers = Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; i < 40; i++) await insertMemories(db, [mem(`w${w}-${i}`), mem(`w${w}-${i}b`)]);
      }),
    ).finally(() => (writing = false));
    while (writing) {
      const page = await readFeed(db, cursor, 7);
      for (const e of page) seen.set(e.memoryId, (seen.get(e.memoryId) ?? 0) + 1);
      if (page.length) cursor = page.at(-1)!;
    }
    await writers;
    await waitFor(async () => {
      const page = await readFeed(db, cursor, 50);
      for (const e of page) seen.set(e.memoryId, (seen.get(e.memoryId) ?? 0) + 1);
      if (page.length) cursor = page.at(-1)!;
      return seen.size >= 4 * 40 * 2;
    }, { what: 'every change read' });
    // seq crosses 99 -> 100 here: ordering must be numeric, never textual.
    expect(seen.size).toBe(4 * 40 * 2);
    expect([...seen.entries()].filter(([, n]) => n !== 1)).toEqual([]);
  });

  it('orders numerically within one transaction across digit boundaries', async () => {
    const db = t.database.db;
    const from = await feedHead(db);
    // Put the sequence just below a power of ten so this batch crosses 9999 -> 10000.
    await t.database.sql`SELECT setval('change_feed_seq_seq', 9990)`;
    await insertMemories(db, Array.from({ length: 150 }, (_, i) => mem(`digits-${i}`)));
    const rows = await waitFor(async () => {
      const r = await readFeed(db, from, 1000);
      return r.length >= 150 ? r : undefined;
    });
    for (let i = 1; i < rows.length; i++) expect(BigInt(rows[i]!.seq) > BigInt(rows[i - 1]!.seq)).toBe(true);
  });

  it('cursor encoding round-trips and rejects garbage', () => {
    const p = { txid: '123456', seq: '42' };
    expect(decodeCursor(encodeCursor(p))).toEqual(p);
    for (const bad of ['', 'v1', 'v1.1', 'v2.1.2', 'v1.-1.2', 'v1.1.2.3', 'v1.99999999999999999999999.1', "v1.1.1' OR 1=1"]) expect(decodeCursor(bad)).toBeNull();
  });
});
