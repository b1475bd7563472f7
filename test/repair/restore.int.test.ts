import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createDatabase, type Database } from '../../src/db/client.js';
import { rowKeys } from '../../src/store/repair-digests.js';
import { startNode, type RunningNode } from '../../workers/node.js';
import { PG_ADMIN_URL, waitFor } from '../helpers/env.js';
import { startMesh } from '../helpers/mesh.js';
import { api, type TestNode } from '../helpers/node.js';

/*
 * The restore scenario as an operator meets it: node-a's database is dumped with pg_dump,
 * the mesh goes on writing and deleting on every node, then node-a's database is dropped
 * and the old dump restored into the same name, and node-a restarted. Nothing else is done:
 * node-a must find out (its peers' cursors name feed entries it lost), repair against its
 * peers, and every node must end with the same state, with no deleted row back.
 */
const execAsync = promisify(execFile);
// A hung dump or restore fails the test with its own message, not the test's timeout.
const run = (bin: string, args: string[]) => execAsync(bin, args, { timeout: 60_000 });
const pgBin = (name: string) => name; // pg_dump / pg_restore are on PATH (else /usr/lib/postgresql/*/bin)
const pgConn = () => {
  const u = new URL(PG_ADMIN_URL);
  return ['-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username || 'postgres')];
};

let nodes: TestNode[];
let restarted: RunningNode | null = null;
const pools: Database[] = [];
const deleted = new Set<string>();
const created = new Set<string>();

const write = async (n: { url: string }, title: string) => {
  const r = await api(n.url, 'POST', '/api/v1/memories', { title, content: title, tier: 'long' });
  expect(r.status).toBe(201);
  created.add(r.json.id);
  return r.json.id as string;
};
const remove = async (n: { url: string }, id: string) => {
  const r = await api(n.url, 'DELETE', `/api/v1/memories/${id}`);
  expect(r.status).toBe(200);
  deleted.add(id);
};
const update = async (n: { url: string }, id: string) => expect((await api(n.url, 'PUT', `/api/v1/memories/${id}`, { content: `updated on ${n.url}` })).status).toBe(200);

/** A node's visible rows by LWW key, read straight from its database. */
const stateOf = async (db: Database) => JSON.stringify((await rowKeys(db.db, [''])).map((k) => [k.id, k.tomb, k.time, k.digest]));
const pool = (url: string) => {
  const d = createDatabase(url, { max: 2 });
  pools.push(d);
  return d;
};
/** All nodes equal and holding every id written (a deleted one as a tombstone). */
async function converged(dbs: Database[]): Promise<boolean> {
  const states = await Promise.all(dbs.map(stateOf));
  if (states.some((s) => s !== states[0])) return false;
  const rows = new Map((await rowKeys(dbs[0]!.db, [''])).map((k) => [k.id, k]));
  return [...created].every((id) => rows.has(id) && rows.get(id)!.tomb === deleted.has(id));
}

beforeAll(async () => {
  // The repair schedule is a day away (its first run is at each node's start).
  nodes = await startMesh(3, { env: { CATCHUP_INTERVAL_MS: '1000', REPAIR_INTERVAL_MS: '86400000', FED_QUORUM_W: '1' } });
});
afterAll(async () => {
  await restarted?.close();
  for (const p of pools) await p.close();
  for (const n of nodes ?? []) await n.destroy();
});

describe('a node restored from an older pg_dump', () => {
  it('converges with its peers after a restart alone, and no deleted row comes back', async () => {
    const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
    // Before the dump: writes and deletes on every node.
    const early: string[] = [];
    for (const n of nodes) for (let i = 0; i < 4; i++) early.push(await write(n, `early ${n.id} ${i}`));
    for (const [i, n] of nodes.entries()) await remove(n, early[i * 4]!);
    const aPool = pool(a.db.url);
    await waitFor(() => converged([aPool, b.db.database, c.db.database]), { timeoutMs: 60_000, what: 'converged before the dump' });

    const [atDump] = await aPool.sql`SELECT last_value::text AS seq FROM change_feed_seq_seq`;
    const dumpFile = path.join(mkdtempSync(path.join(tmpdir(), 'memfed-dump-')), 'a.dump');
    await run(pgBin('pg_dump'), [...pgConn(), '-Fc', '-f', dumpFile, a.db.name]);

    // After the dump: more writes, deletes of old and new rows, updates, on every node.
    const late: string[] = [];
    for (const n of nodes) for (let i = 0; i < 4; i++) late.push(await write(n, `late ${n.id} ${i}`));
    for (const [i, n] of nodes.entries()) {
      await remove(n, late[i * 4]!);
      await remove(n, early[((i + 1) % 3) * 4 + 1]!);
      await update(n, early[((i + 2) % 3) * 4 + 2]!);
    }
    await waitFor(() => converged([aPool, b.db.database, c.db.database]), { timeoutMs: 60_000, what: 'converged before the restore' });
    // b and c have pulled node-a's latest feed entries (their cursors are past the dump).
    await waitFor(
      async () => {
        const cursor = (await b.db.database.sql`SELECT cursor FROM peer_watermarks WHERE peer_id = 'node-a'`)[0]?.cursor as string | null | undefined;
        const seq = cursor ? /^v1\.\d+\.(\d+)$/.exec(cursor)?.[1] : undefined;
        return seq !== undefined && BigInt(seq) > BigInt(atDump!.seq as string);
      },
      { timeoutMs: 30_000, what: 'b pulled from a past the dump' },
    );

    // The restore: stop node-a, drop its database, restore the dump into the same name.
    await a.stop();
    for (const p of pools.splice(0)) await p.close();
    await a.db.database.close();
    const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`DROP DATABASE "${a.db.name}" WITH (FORCE)`);
    await admin.unsafe(`CREATE DATABASE "${a.db.name}"`);
    await admin.end();
    await run(pgBin('pg_restore'), [...pgConn(), '-d', a.db.name, dumpFile]);
    const restoredPool = pool(a.db.url);
    expect(await converged([restoredPool, b.db.database, c.db.database])).toBe(false);
    const [lost] = await restoredPool.sql`SELECT count(*)::int AS n FROM memories WHERE title LIKE 'late %'`;
    expect(lost!.n).toBe(0);
    // What a pg_dump restore in place does to feed positions: the sequence is back at its
    // dumped value (below b's cursor into a), transaction ids go on rising in the cluster
    // (above it), so new entries sort after the cursor and b skips none of them.
    const [wm] = await b.db.database.sql`SELECT cursor FROM peer_watermarks WHERE peer_id = 'node-a'`;
    const [, cursorTxid, cursorSeq] = /^v1\.(\d+)\.(\d+)$/.exec(String(wm!.cursor))!;
    const [pos] = await restoredPool.sql`SELECT last_value::text AS seq, pg_current_xact_id()::text AS txid FROM change_feed_seq_seq`;
    expect(BigInt(pos!.seq)).toBeLessThan(BigInt(cursorSeq!));
    expect(BigInt(pos!.txid)).toBeGreaterThan(BigInt(cursorTxid!));

    // Restart node-a (same configuration, same Redis prefix): nothing else.
    restarted = await startNode('all', loadConfig(a.env));
    // A write on node-a after the restart must reach its peers too (no cursor skips it).
    const after = await write(a, 'after the restore');
    await waitFor(() => converged([restoredPool, b.db.database, c.db.database]), { timeoutMs: 120_000, intervalMs: 500, what: 'converged after the restore' });
    for (const n of [b, c]) expect((await api(n.url, 'GET', `/api/v1/memories/${after}`)).status).toBe(200);
    // No deleted row is served anywhere.
    for (const id of deleted) for (const url of [a.url, b.url, c.url]) expect((await api(url, 'GET', `/api/v1/memories/${id}`)).status).toBe(404);
    // The restore was detected and a post-restore repair ran (next to the first scheduled run at the start).
    const metrics = (await api(a.url, 'GET', '/metrics')).text;
    expect(metrics).toMatch(/memfed_restore_detections_total\{[^}]*\} [1-9]/);
    expect(metrics).toMatch(/memfed_repair_runs_total\{[^}]*trigger="restored"[^}]*outcome="ok"[^}]*\} [1-9]/);
  }, 300_000);
});
