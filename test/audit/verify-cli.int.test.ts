import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOwnKey, loadAuditKeys } from '../../src/federation/keys.js';
import { appendEvents } from '../../src/audit/append.js';
import { listCheckpoints } from '../../src/store/audit.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { uniqueSuffix, waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { spawnMemfed } from '../helpers/process.js';

/*
 * `memfed audit verify` as a real process: its exit code and first bad seq on a tampered
 * chain, `--from`, archived checkpoints (`--checkpoints`) against truncation that also
 * deleted the local checkpoints; and, on a running node, AUDIT_LEVEL=all and time-based
 * checkpoints.
 */

const NODE = 'cli-auditor';
const AT = '2026-01-01T00:00:00.000000+00:00';

function cli(env: { url: string; keyDir: string; nodeId?: string }, args: string[]) {
  const p = spawnMemfed(['audit', 'verify', ...args], { DATABASE_URL: env.url, NODE_ID: env.nodeId ?? NODE, FED_KEY_DIR: env.keyDir, LOG_LEVEL: 'silent' });
  return p.exited.then((code) => ({ code, out: p.output() }));
}
const lastJson = (out: string) => JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;

/** A database holding a 20-entry chain of NODE, appended at once: one checkpoint, at 20. */
async function storedChain(): Promise<{ t: TestDatabase; keyDir: string }> {
  const t = await createTestDatabase();
  const keyDir = newKeyDir();
  await ensureOwnKey(keyDir, NODE);
  const { signer } = await loadAuditKeys(keyDir, NODE);
  const events = Array.from({ length: 20 }, (_, i) => ({ eventId: `e-${i + 1}`, event: { kind: 'federation.refused', at: AT, actor: 'peer-x', details: { i: i + 1 } } }));
  await appendEvents({ db: t.database.db, nodeId: NODE, signer: signer!, checkpointEvery: 5 }, events);
  return { t, keyDir };
}

describe('memfed audit verify on a stored chain', () => {
  const dbs: TestDatabase[] = [];
  let chain: { t: TestDatabase; keyDir: string };

  beforeAll(async () => {
    chain = await storedChain();
    dbs.push(chain.t);
  });
  afterAll(async () => {
    await Promise.all(dbs.map((d) => d.drop()));
  });

  it('exits 0 on the intact chain and 1 on a tampered one, naming the first bad seq and kind', async () => {
    const env = { url: chain.t.url, keyDir: chain.keyDir };
    const ok = await cli(env, []);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^ok: 20 entries verified from seq 1 to 20, \d+ checkpoint\(s\) held/m);
    const sql = chain.t.database.sql;
    await sql`UPDATE audit_log SET canonical = replace(canonical, '"i":7', '"i":70') WHERE seq = 7`;
    try {
      const bad = await cli(env, []);
      expect(bad.code).toBe(1);
      expect(bad.out).toContain('FAILED at seq 7: hash_mismatch (canonical bytes do not match payloadHash); 6 entries verified before it');
      const json = await cli(env, ['--json']);
      expect(json.code).toBe(1);
      expect(lastJson(json.out)).toMatchObject({ ok: false, seq: 7, kind: 'hash_mismatch', count: 6, node_id: NODE, from: 1 });

      // --from N: entry N-1 is the anchor, checked on its own; nothing is claimed before it.
      const after = await cli(env, ['--from', '9', '--json']);
      expect(after.code).toBe(0);
      expect(lastJson(after.out)).toMatchObject({ ok: true, count: 12, head: { seq: 20 }, from: 9 });
      const anchorBad = await cli(env, ['--from', '8']);
      expect(anchorBad.code).toBe(1);
      expect(anchorBad.out).toContain('FAILED at seq 7: hash_mismatch');
      const at7 = await cli(env, ['--from', '7']);
      expect(at7.code).toBe(1);
      expect(at7.out).toContain('FAILED at seq 7: hash_mismatch');
    } finally {
      await sql`UPDATE audit_log SET canonical = replace(canonical, '"i":70', '"i":7') WHERE seq = 7`;
    }
    expect((await cli(env, [])).code).toBe(0);
  }, 90_000);

  it('run with another NODE_ID or FED_KEY_DIR: fails at seq 1 and says to check the environment', async () => {
    for (const env of [{ url: chain.t.url, keyDir: newKeyDir() }, { url: chain.t.url, keyDir: chain.keyDir, nodeId: 'some-other-node' }]) {
      const r = await cli(env, []);
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/^FAILED at seq 1: /m);
      expect(r.out).toContain(`check the environment: NODE_ID=${env.nodeId ?? NODE} and FED_KEY_DIR=${env.keyDir} must be the node's own`);
      expect(lastJson((await cli(env, ['--json'])).out)).toMatchObject({ ok: false, seq: 1, hint: expect.stringContaining('check the environment') });
    }
  });

  it('exits 2 on a bad --from, and on an archive of another node or of the wrong shape', async () => {
    const env = { url: chain.t.url, keyDir: chain.keyDir };
    for (const from of ['0', '-3', '1.5']) {
      const r = await cli(env, ['--from', from]);
      expect(r.code, from).toBe(2);
      expect(r.out).toMatch(from === '-3' ? /Option '--from' argument is ambiguous/ : /--from must be a positive integer/);
    }
    const dir = tmpdir();
    const other = path.join(dir, `cp-other-${uniqueSuffix()}.json`);
    writeFileSync(other, JSON.stringify({ node_id: 'someone-else', checkpoints: [] }));
    const r1 = await cli(env, ['--checkpoints', other]);
    expect(r1.code).toBe(2);
    expect(r1.out).toContain('checkpoints of node "someone-else"');
    const shape = path.join(dir, `cp-shape-${uniqueSuffix()}.json`);
    writeFileSync(shape, JSON.stringify({ checkpoints: [{ seq: '5' }] }));
    const r2 = await cli(env, ['--checkpoints', shape]);
    expect(r2.code).toBe(2);
    expect(r2.out).toContain('each checkpoint needs seq, hash, at, keyId and signature');
  }, 60_000);

  it('detects a truncated tail whose local checkpoints were deleted too, given the archived checkpoints', async () => {
    const own = await storedChain();
    dbs.push(own.t);
    const { signer } = await loadAuditKeys(own.keyDir, NODE);
    // More checkpoints (one per append), so some survive below the cut and some do not.
    for (let i = 21; i <= 40; i += 5) {
      const evs = Array.from({ length: 5 }, (_, k) => ({ eventId: `e-${i + k}`, event: { kind: 'federation.refused', at: AT, details: { i: i + k } } }));
      await appendEvents({ db: own.t.database.db, nodeId: NODE, signer: signer!, checkpointEvery: 5 }, evs);
    }
    const archivedList = await listCheckpoints(own.t.database.db, 0, 1000);
    expect(archivedList.map((c) => c.seq)).toEqual([20, 25, 30, 35, 40]);
    const archive = path.join(tmpdir(), `cp-${NODE}-${uniqueSuffix()}.json`);
    // Exactly what GET /api/v1/audit/checkpoints answers.
    writeFileSync(archive, JSON.stringify({ node_id: NODE, checkpoints: archivedList }));
    const env = { url: own.t.url, keyDir: own.keyDir };
    expect((await cli(env, ['--checkpoints', archive])).code).toBe(0);

    // Cut the tail after seq 27 and delete the checkpoints that covered it.
    const sql = own.t.database.sql;
    await sql`DELETE FROM audit_log WHERE seq > 27`;
    await sql`DELETE FROM audit_checkpoints WHERE seq > 27`;
    const local = await cli(env, ['--json']);
    // The local table alone cannot show it (docs/operations.md): a shorter chain is a valid chain.
    expect(local.code).toBe(0);
    expect(lastJson(local.out)).toMatchObject({ ok: true, count: 27, head: { seq: 27 } });
    const held = await cli(env, ['--checkpoints', archive]);
    expect(held.code).toBe(1);
    expect(held.out).toMatch(/FAILED at seq 28: behind_checkpoint \(the chain ends at seq 27 but a checkpoint signed at .* covers seq 30: the tail was cut off\)/);

    // A rewrite from seq 26 on, re-signed with the real key, after deleting the checkpoints: a fork.
    await sql`DELETE FROM audit_log WHERE seq > 25`;
    await sql`DELETE FROM audit_checkpoints WHERE seq > 25`;
    await appendEvents({ db: own.t.database.db, nodeId: NODE, signer: signer!, checkpointEvery: 1000 }, Array.from({ length: 10 }, (_, k) => ({ eventId: `forged-${k}`, event: { kind: 'federation.refused', at: AT, details: { forged: k } } })));
    expect((await cli(env, [])).code).toBe(0);
    const fork = await cli(env, ['--checkpoints', archive]);
    expect(fork.code).toBe(1);
    expect(fork.out).toContain('FAILED at seq 30: fork');
  }, 90_000);
});

describe('audit settings on a running node', () => {
  let all: TestNode;
  let security: TestNode;
  let keyDir: string;

  beforeAll(async () => {
    keyDir = newKeyDir();
    [all, security] = await Promise.all([
      startTestNode({ id: 'audit-all', keyDir, env: { ADMIN_TOKEN: 'tok', AUDIT_LEVEL: 'all', AUDIT_CHECKPOINT_EVERY: '10000000', AUDIT_CHECKPOINT_INTERVAL_MS: '200' } }),
      startTestNode({ id: 'audit-security', env: { AUDIT_CHECKPOINT_EVERY: '10000000' } }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([all?.destroy(), security?.destroy()]);
  });

  const committed = async (n: TestNode) =>
    (await n.db.database.sql`SELECT canonical FROM audit_log WHERE kind = 'memory.committed' ORDER BY seq`).map((r) => JSON.parse(r.canonical as string).details as { op: string; ids: string[]; count: number });

  it('AUDIT_LEVEL=all records every local create, bulk create and update as memory.committed', async () => {
    const c = await api(all.url, 'POST', '/api/v1/memories', { title: 'one', content: 'x' });
    const b = await api(all.url, 'POST', '/api/v1/memories/bulk', [{ title: 'two', content: 'x' }, { title: 'three', content: 'x' }]);
    const u = await api(all.url, 'PUT', `/api/v1/memories/${c.json.id}`, { content: 'y' });
    expect([c.status, b.status, u.status]).toEqual([201, 200, 200]);
    const d = await api(all.url, 'DELETE', `/api/v1/memories/${b.json.ids[0]}`);
    expect(d.status).toBe(200);
    const events = await waitFor(async () => {
      const e = await committed(all);
      return e.length >= 3 ? e : undefined;
    }, { what: 'memory.committed events' });
    expect(events).toEqual([
      { op: 'create', ids: [c.json.id], count: 1 },
      { op: 'bulk', ids: b.json.ids, count: 2 },
      { op: 'update', ids: [c.json.id], count: 1 },
    ]);
    await waitFor(async () => (await all.db.database.sql`SELECT 1 FROM audit_log WHERE kind = 'memory.deleted' AND canonical LIKE ${`%${b.json.ids[0]}%`}`).length === 1, { what: 'memory.deleted' });
  });

  it('AUDIT_LEVEL=security (the default) records the deletion but no commit', async () => {
    const c = await api(security.url, 'POST', '/api/v1/memories', { title: 'quiet', content: 'x' });
    expect(c.status).toBe(201);
    expect((await api(security.url, 'PUT', `/api/v1/memories/${c.json.id}`, { content: 'y' })).status).toBe(200);
    expect((await api(security.url, 'DELETE', `/api/v1/memories/${c.json.id}`)).status).toBe(200);
    // The deletion was recorded after the create and update: once it is in the chain, they would be too.
    await waitFor(async () => (await security.db.database.sql`SELECT 1 FROM audit_log WHERE kind = 'memory.deleted' AND canonical LIKE ${`%${c.json.id}%`}`).length === 1, { what: 'memory.deleted' });
    expect(await committed(security)).toEqual([]);
    // Nor is one waiting in the outbox.
    expect(await security.db.database.sql`SELECT 1 FROM audit_outbox WHERE event->>'kind' = 'memory.committed'`).toHaveLength(0);
  });

  it('signs a checkpoint of the head every AUDIT_CHECKPOINT_INTERVAL_MS when the head moved', async () => {
    const sql = all.db.database.sql;
    const head = async () => Number((await sql`SELECT coalesce(max(seq), 0)::int AS s FROM audit_log`)[0]!.s);
    const checkpointAt = (seq: number) => waitFor(async () => (await sql`SELECT seq FROM audit_checkpoints WHERE seq >= ${seq} ORDER BY seq LIMIT 1`)[0]?.seq as number | undefined, { timeoutMs: 15_000, what: `a checkpoint at or past seq ${seq}` });
    for (let round = 0; round < 2; round++) {
      const r = await api(all.url, 'POST', '/api/v1/memories', { title: `tick ${round}`, content: 'x' });
      await waitFor(async () => (await sql`SELECT 1 FROM audit_log WHERE kind = 'memory.committed' AND canonical LIKE ${`%${r.json.id}%`}`).length === 1, { what: 'commit in the chain' });
      await checkpointAt(await head());
    }
    // Far below AUDIT_CHECKPOINT_EVERY: these came from the timer. Each covers a real head and verifies.
    const cps = await listCheckpoints(all.db.database.db, 0, 1000);
    expect(cps.length).toBeGreaterThanOrEqual(2);
    const seqs = cps.map((c) => c.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    for (const cp of cps) {
      const [row] = await sql`SELECT hash FROM audit_log WHERE seq = ${cp.seq}`;
      expect(row?.hash, `checkpoint ${cp.seq}`).toBe(cp.hash);
    }
    const v = await api(all.url, 'GET', '/api/v1/admin/audit/verify', undefined, { authorization: 'Bearer tok' });
    expect(v.json).toMatchObject({ ok: true, checkpointsChecked: cps.length });

    // The node's own answer, archived as the docs say, is accepted by the CLI as is.
    const served = await api(all.url, 'GET', '/api/v1/audit/checkpoints');
    const archive = path.join(tmpdir(), `cp-audit-all-${uniqueSuffix()}.json`);
    writeFileSync(archive, served.text);
    const r = await cli({ url: all.db.url, keyDir, nodeId: 'audit-all' }, ['--checkpoints', archive, '--json']);
    expect(r.code).toBe(0);
    expect(lastJson(r.out)).toMatchObject({ ok: true, node_id: 'audit-all' });
    expect(Number(lastJson(r.out).checkpointsChecked)).toBeGreaterThanOrEqual(2 * served.json.checkpoints.length);
  }, 60_000);
});
