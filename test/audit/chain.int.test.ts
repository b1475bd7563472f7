import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOwnKey, loadAuditKeys } from '../../src/federation/keys.js';
import { verifyStoredChain } from '../../src/audit/verify.js';
import { appendEvents } from '../../src/audit/append.js';
import { insertOutbox } from '../../src/store/audit.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { PG_ADMIN_URL, REDIS_URL, dbUrl, waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';
import { PrivateRedis } from '../helpers/private-redis.js';
import { spawnMemfed } from '../helpers/process.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';

const NODE = 'auditor';

function events(n: number, offset = 0) {
  return Array.from({ length: n }, (_, i) => ({ eventId: `e-${offset + i}`, event: { kind: 'federation.refused', at: '2026-01-01T00:00:00.000000+00:00', actor: 'peer-x', details: { i: offset + i } } }));
}

describe('a stored chain of 100,000 entries', () => {
  let t: TestDatabase;
  let keyDir: string;
  let restored: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    keyDir = newKeyDir();
    await ensureOwnKey(keyDir, NODE);
    const { signer } = await loadAuditKeys(keyDir, NODE);
    for (let i = 0; i < 100_000; i += 2000) await appendEvents({ db: t.database.db, nodeId: NODE, signer: signer!, checkpointEvery: 10_000 }, events(2000, i));
    restored = `${t.name}_restored`;
  }, 240_000);
  afterAll(async () => {
    await t?.drop();
    const a = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
    await a.unsafe(`DROP DATABASE IF EXISTS "${restored}" WITH (FORCE)`);
    await a.end();
  });

  const cli = (url: string, args: string[]) => {
    const p = spawnMemfed(['audit', 'verify', ...args], { DATABASE_URL: url, NODE_ID: NODE, FED_KEY_DIR: keyDir });
    return p.exited.then((code) => ({ code, out: p.output() }));
  };

  it('verifies with memfed audit verify (exit 0), and again after pg_dump/restore', async () => {
    const r = await cli(t.url, ['--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out.trim().split('\n').at(-1)!);
    expect(j).toMatchObject({ ok: true, count: 100_000, head: { seq: 100_000 }, checkpointsChecked: 10 });
    const dump = execFileSync('pg_dump', ['-Fc', t.url], { maxBuffer: 1 << 30 });
    const a = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
    await a.unsafe(`CREATE DATABASE "${restored}"`);
    await a.end();
    execFileSync('pg_restore', ['--no-owner', '-d', dbUrl(restored)], { input: dump, maxBuffer: 1 << 30 });
    const again = await cli(dbUrl(restored), ['--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out.trim().split('\n').at(-1)!)).toMatchObject({ ok: true, count: 100_000 });
  }, 180_000);

  it('detects tampering in the table with the right kind and first bad sequence', async () => {
    const { keys } = await loadAuditKeys(keyDir, NODE);
    const sql = t.database.sql;
    const verify = (from?: number) => verifyStoredChain(t.database.db, { nodeId: NODE, keys, ...(from ? { from } : {}) });
    // 1. byte change in the stored canonical bytes
    await sql`UPDATE audit_log SET canonical = replace(canonical, '"i":54321', '"i":54322') WHERE seq = 54322`;
    expect(await verify(50_000)).toMatchObject({ ok: false, seq: 54322, kind: 'hash_mismatch' });
    await sql`UPDATE audit_log SET canonical = replace(canonical, '"i":54322', '"i":54321') WHERE seq = 54322`;
    // 2. a deleted entry
    const [row] = await sql`DELETE FROM audit_log WHERE seq = 70001 RETURNING *`;
    expect(await verify(69_000)).toMatchObject({ ok: false, seq: 70001, kind: 'gap' });
    await sql`INSERT INTO audit_log ${sql(row!)}`;
    // 3. truncation after a checkpoint
    const tail = await sql`DELETE FROM audit_log WHERE seq > 95000 RETURNING *`;
    expect(await verify(90_000)).toMatchObject({ ok: false, kind: 'behind_checkpoint' });
    for (let i = 0; i < tail.length; i += 1000) await sql`INSERT INTO audit_log ${sql(tail.slice(i, i + 1000) as any)}`;
    // 4. a signature swapped for another entry's
    const [{ signature: other }] = (await sql`SELECT signature FROM audit_log WHERE seq = 3`) as unknown as [{ signature: string }];
    const [{ signature: orig }] = (await sql`SELECT signature FROM audit_log WHERE seq = 5`) as unknown as [{ signature: string }];
    await sql`UPDATE audit_log SET signature = ${other} WHERE seq = 5`;
    expect(await verify()).toMatchObject({ ok: false, seq: 5, kind: 'bad_signature' });
    await sql`UPDATE audit_log SET signature = ${orig} WHERE seq = 5`;
    expect(await verify(99_000)).toMatchObject({ ok: true });
  }, 120_000);
});

describe('audit events from a running node', () => {
  let n: TestNode;
  let peer: FakePeer;
  beforeAll(async () => {
    const keyDir = newKeyDir();
    peer = await new FakePeer('peer-a').init();
    peer.enrolIn(keyDir);
    n = await startTestNode({
      id: 'audited',
      keyDir,
      env: { ADMIN_TOKEN: 'tok', AUDIT_CHECKPOINT_EVERY: '5', GOVERNANCE_POLICY: JSON.stringify({ deny_namespaces: ['secret/**'], peer_namespaces: { 'peer-a': ['shared/**'] } }) },
    });
  });
  afterAll(async () => {
    await n?.destroy();
  });

  const kinds = async () => (await n.db.database.sql`SELECT kind FROM audit_log ORDER BY seq`).map((r) => r.kind as string);

  it('records refusals, governance refusals and deletions, and the chain verifies', async () => {
    const tampered = peer.push({ sender_agent_id: 'peer-a', memories: [] });
    tampered.body = Buffer.from(tampered.body.toString().replace('[]', '[ ]'));
    expect((await send(n.url, tampered)).status).toBe(401);
    const denied = await api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c', namespace: 'secret/plans' });
    expect(denied.status).toBe(403);
    expect(denied.json).toMatchObject({ code: 'GOVERNANCE_REFUSED', rule: 'deny_namespaces[0]', reason_code: 'GOVERNANCE_NAMESPACE_DENIED' });
    expect((await api(n.url, 'GET', '/api/v1/memories?namespace=secret/plans')).json.count).toBe(0);
    const pushed = await send(n.url, peer.push({ sender_agent_id: 'peer-a', memories: [wireMemory({ namespace: 'shared/x' }), wireMemory({ namespace: 'private/y' })] }));
    expect(pushed.json).toMatchObject({ applied: 1, skipped: 1 });
    expect(pushed.json.results.find((r: { status: string }) => r.status === 'skipped').reason).toMatch(/^GOVERNANCE_PEER_NAMESPACE/);
    const c = await api(n.url, 'POST', '/api/v1/memories', { title: 'bye', content: 'c' });
    await api(n.url, 'DELETE', `/api/v1/memories/${c.json.id}`);
    await waitFor(async () => {
      const k = await kinds();
      return ['key.changed', 'federation.refused', 'governance.refused', 'memory.deleted'].every((x) => k.includes(x)) && k.filter((x) => x === 'governance.refused').length >= 2;
    }, { what: 'events in the chain' });
    const v = await api(n.url, 'GET', '/api/v1/admin/audit/verify', undefined, { authorization: 'Bearer tok' });
    expect(v.status).toBe(200);
    expect(v.json.ok).toBe(true);
    const cps = await api(n.url, 'GET', '/api/v1/audit/checkpoints');
    expect(cps.json.checkpoints.length).toBeGreaterThanOrEqual(1);
    const m = await api(n.url, 'GET', '/metrics');
    expect(m.text).toMatch(/memfed_audit_head_sequence\{node="audited",role="all",process="[^"]+"\} [1-9]/);
  });
});

describe('audit under faults', () => {
  it('killing the audit worker mid-append loses and duplicates nothing', async () => {
    const t = await createTestDatabase();
    const prefix = uniquePrefix();
    const keyDir = newKeyDir();
    await ensureOwnKey(keyDir, NODE);
    const env = { NODE_ID: NODE, DATABASE_URL: t.url, REDIS_URL, QUEUE_PREFIX: prefix, FED_KEY_DIR: keyDir, WORKER_QUEUES: 'audit', WORKER_HTTP_PORT: '0', LOG_LEVEL: 'warn', JOB_LOCK_MS: '5000', FED_REQUEST_TIMEOUT_MS: '2000' };
    try {
      // 3,000 events in the outbox and 300 jobs naming them, then start a worker and kill it mid-way.
      const { Queue } = await import('bullmq');
      const conn = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
      const q = new Queue('audit', { connection: conn, prefix });
      const ids: string[] = [];
      for (let j = 0; j < 300; j++) {
        const evs = Array.from({ length: 10 }, (_, i) => ({ eventId: randomUUID(), event: { kind: 'federation.refused', at: '2026-01-01T00:00:00.000000+00:00', details: { j, i } }, reason: 'outbox' }));
        ids.push(...evs.map((e) => e.eventId));
        await q.add('audit.append', { outboxIds: await insertOutbox(t.database.db, evs) }, { attempts: 5 });
      }
      let worker = spawnMemfed(['worker'], env);
      await waitFor(async () => Number((await t.database.sql`SELECT count(*)::int AS n FROM audit_log`)[0]!.n) > 200, { timeoutMs: 30_000, intervalMs: 20, what: 'appends started' });
      worker.signal('SIGKILL');
      await worker.exited;
      const mid = Number((await t.database.sql`SELECT count(*)::int AS n FROM audit_log`)[0]!.n);
      expect(mid).toBeLessThan(3000);
      worker = spawnMemfed(['worker'], env);
      // The killed job's lock must lapse (stalled check) before it is re-run.
      await waitFor(async () => Number((await t.database.sql`SELECT count(*)::int AS n FROM audit_log`)[0]!.n) === 3000, { timeoutMs: 60_000, intervalMs: 250, what: 'all 3000 appended' });
      // Every job done (the killed one re-run), none failed: no append can still come.
      await waitFor(async () => (await q.getJobCounts('completed')).completed === 300, { timeoutMs: 60_000, what: 'all 300 jobs completed' });
      const counts = await q.getJobCounts('failed', 'waiting', 'active', 'delayed');
      await worker.stop();
      await q.close();
      conn.disconnect();
      expect(counts).toEqual({ failed: 0, waiting: 0, active: 0, delayed: 0 });
      // event_id is unique in the schema, so a re-run append can only show as a failed job
      // (above) or as a hole or a reused position in the chain (below), never as a count.
      const [{ n: rows, lo, hi }] = (await t.database.sql`SELECT count(*)::int AS n, min(seq)::int AS lo, max(seq)::int AS hi FROM audit_log`) as unknown as [{ n: number; lo: number; hi: number }];
      expect(rows).toBe(3000);
      expect({ lo, hi }).toEqual({ lo: 1, hi: 3000 });
      const stored = new Set((await t.database.sql`SELECT event_id FROM audit_log`).map((r) => r.event_id));
      expect(ids.every((id) => stored.has(id))).toBe(true);
      const { keys } = await loadAuditKeys(keyDir, NODE);
      expect(await verifyStoredChain(t.database.db, { nodeId: NODE, keys })).toMatchObject({ ok: true, count: 3000 });
    } finally {
      await t.drop();
      await dropPrefix(prefix);
    }
  }, 150_000);

  it('audit jobs lost with a Redis restart (no persistence) still reach the chain', async () => {
    const redis = await new PrivateRedis().start();
    const keyDir = newKeyDir();
    const peer = await new FakePeer('peer-w').init();
    peer.enrolIn(keyDir);
    // An API with no worker: refusals queue up as audit jobs in Redis...
    const apiNode = await startTestNode({ id: 'wiped', role: 'api', keyDir, env: { REDIS_URL: redis.url } });
    let worker: TestNode | undefined;
    try {
      for (let i = 0; i < 5; i++) {
        const r = peer.push({ sender_agent_id: 'peer-w', memories: [] });
        delete r.headers['x-memory-sig'];
        expect((await send(apiNode.url, r)).status).toBe(401);
      }
      await waitFor(async () => Number((await apiNode.db.database.sql`SELECT count(*)::int AS n FROM audit_outbox WHERE event->>'kind' = 'federation.refused'`)[0]!.n) === 5, { what: 'outbox written' });
      // ...then Redis restarts empty: every queued job is gone.
      await redis.stop();
      await redis.start();
      worker = await startTestNode({ id: 'wiped', role: 'worker', keyDir, db: apiNode.db, prefix: apiNode.prefix, env: { REDIS_URL: redis.url, WORKER_HTTP_PORT: '0' } });
      await waitFor(async () => Number((await apiNode.db.database.sql`SELECT count(*)::int AS n FROM audit_log WHERE kind = 'federation.refused'`)[0]!.n) === 5, { timeoutMs: 30_000, what: 'refusals appended from the outbox' });
    } finally {
      await worker?.stop();
      await apiNode.destroy();
      await redis.stop();
    }
  }, 90_000);

  it('with Redis stopped, refusals still end up in the chain after it returns', async () => {
    const redis = await new PrivateRedis().start();
    const keyDir = newKeyDir();
    const peer = await new FakePeer('peer-r').init();
    peer.enrolIn(keyDir);
    const n = await startTestNode({ id: 'redisless', keyDir, env: { REDIS_URL: redis.url } });
    try {
      await redis.stop();
      for (let i = 0; i < 5; i++) {
        const r = peer.push({ sender_agent_id: 'peer-r', memories: [] });
        delete r.headers['x-memory-sig'];
        const res = await send(n.url, r);
        expect(res.json.error).toBe('x_memory_sig_missing');
      }
      // parked in Postgres while Redis is down
      // (the start-up key.changed event may be parked there too, if it was still in flight)
      await waitFor(async () => Number((await n.db.database.sql`SELECT count(*)::int AS n FROM audit_outbox WHERE event->>'kind' = 'federation.refused'`)[0]!.n) === 5, { what: 'the audit outbox holds the refusals' });
      await redis.start();
      await waitFor(async () => Number((await n.db.database.sql`SELECT count(*)::int AS n FROM audit_log WHERE kind = 'federation.refused'`)[0]!.n) === 5, { timeoutMs: 30_000, what: 'refusals appended after Redis returns' });
      expect(Number((await n.db.database.sql`SELECT count(*)::int AS n FROM audit_outbox WHERE status = 'pending'`)[0]!.n)).toBe(0);
    } finally {
      await n.destroy();
      await redis.stop();
    }
  }, 90_000);
});

