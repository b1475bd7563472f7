import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatTimestamp } from '../../src/memory/time.js';
import { SetChecker, problems, summarize, type NodeView } from '../helpers/checker.js';
import { waitFor } from '../helpers/env.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';
import { startProcessMesh, type MeshProcess } from '../helpers/process-mesh.js';

/*
 * Clock skew: real `memfed all` processes whose wall clock (src/clock.ts) runs minutes
 * ahead or behind through the test-only MEMFED_TEST_CLOCK_SKEW_MS. What memfed promises
 * (docs/operations.md, "Clock skew"): LWW by updated_at, so the fast clock wins concurrent
 * edits; every signed request and every replicated row is judged on the receiver's own
 * clock against +-FED_CLOCK_SKEW_MS; nothing is lost or resurrected.
 */
type Mesh = Awaited<ReturnType<typeof startProcessMesh>>;
const MIN = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const view = (m: MeshProcess, all: MeshProcess[]): NodeView => ({ kind: 'memfed', id: m.id, sql: m.db.database.sql, peers: all.filter((x) => x.id !== m.id).map((x) => x.id) });

async function api(url: string, method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}${p}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  try {
    return { status: res.status, json: JSON.parse(text) };
  } catch {
    return { status: res.status, json: text };
  }
}

async function stateOf(m: MeshProcess, id: string): Promise<{ content: string; updatedAt: string } | null> {
  const r = await m.db.database.sql<Array<{ content: string; updated_at: string }>>`SELECT doc->>'content' AS content, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS updated_at FROM memories WHERE id = ${id} AND deleted_at IS NULL`;
  return r[0] ? { content: r[0].content, updatedAt: r[0].updated_at } : null;
}

/** Waits until every node holds `id` with `content`. */
async function everywhere(mesh: Mesh, id: string, content: string, timeoutMs = 30_000): Promise<void> {
  for (const m of mesh.nodes) {
    await waitFor(async () => (await stateOf(m, id))?.content === content, { timeoutMs, what: `${m.id} holds ${id} with ${JSON.stringify(content)}` }).catch(async (err: Error) => {
      const states = await Promise.all(mesh.nodes.map(async (n) => [n.id, await stateOf(n, id)] as const));
      throw new Error(`${err.message}; states: ${JSON.stringify(Object.fromEntries(states))}`);
    });
  }
}

const skewEnv = (skews: number[]) => (i: number) => ({ NODE_ENV: 'test', MEMFED_TEST_CLOCK_SKEW_MS: String(skews[i] ?? 0) });

describe('clock skew within FED_CLOCK_SKEW_MS: a 3 min ahead, b on time, c 3 min behind (allowance 10 min)', () => {
  let mesh: Mesh;
  let a: MeshProcess;
  let b: MeshProcess;
  let c: MeshProcess;
  beforeAll(async () => {
    mesh = await startProcessMesh(3, { FED_QUORUM_W: '1', FED_CLOCK_SKEW_MS: String(10 * MIN), CATCHUP_INTERVAL_MS: '2000' }, { nodeEnv: skewEnv([3 * MIN, 0, -3 * MIN]) });
    [a, b, c] = mesh.nodes as [MeshProcess, MeshProcess, MeshProcess];
  }, 90_000);
  afterAll(async () => {
    await mesh?.destroy();
  });

  // First: the checker owns every row the nodes hold.
  it('a write burst at every node converges with nothing lost, resurrected or applied twice', async () => {
    const checker = new SetChecker('clock-skew-within', mesh.nodes.map((m) => view(m, mesh.nodes)));
    checker.startSampling();
    await checker.burst(mesh.nodes, 150, { concurrency: 3, spacingMs: 20, timeoutMs: 10_000, retries: 2 });
    const report = await checker.verify({ deadlineMs: 60_000 });
    console.log(summarize(report, { skews: { [a.id]: '+3 min', [b.id]: '0', [c.id]: '-3 min' } }));
    expect(problems(report, { acked: 60, samples: 5 })).toEqual([]);
  }, 120_000);

  it('runs each node on its own clock: new writes are stamped with it, and expires_at from a TTL counts from it', async () => {
    for (const [m, skew] of [[a, 3 * MIN], [b, 0], [c, -3 * MIN]] as const) {
      const before = Date.now();
      const r = await api(m.url, 'POST', '/api/v1/memories', { title: `stamp ${m.id}`, content: 'x', tier: 'long', namespace: 'skew/stamp', ttl_secs: 3600 });
      expect(r.status).toBe(201);
      const got = await api(m.url, 'GET', `/api/v1/memories/${r.json.id}`);
      const at = Date.parse(got.json.memory.created_at);
      expect(at - before).toBeGreaterThanOrEqual(skew - 1000);
      expect(at - Date.now()).toBeLessThanOrEqual(skew + 1000);
      // Expiry counts from the node's own clock too: the TTL lands skew later in real time.
      expect(Date.parse(got.json.memory.expires_at) - at).toBe(3_600_000);
    }
  });

  it('concurrent edits resolve by LWW: the fast clock wins even against a later edit on the slow one; an edit made after seeing it wins', async () => {
    const created = await api(b.url, 'POST', '/api/v1/memories', { title: 'contested', content: 'v0', tier: 'long', namespace: 'skew/lww' });
    expect(created.status).toBe(201);
    const id: string = created.json.id;
    await everywhere(mesh, id, 'v0');
    // a edits first in real time; c edits 300 ms later, its clock 6 min behind a's, before
    // a's version can reach it (no node can connect to another meanwhile: no push, no
    // pull, no relay): a true conflict.
    for (const m of mesh.nodes) m.setReachable(false);
    try {
      expect((await api(a.apiUrls[0]!, 'PUT', `/api/v1/memories/${id}`, { content: 'from the fast clock' })).status).toBe(200);
      await sleep(300);
      const late = await api(c.apiUrls[0]!, 'PUT', `/api/v1/memories/${id}`, { content: 'from the slow clock, later' });
      expect(late.status).toBe(200);
      expect((await stateOf(c, id))?.content).toBe('from the slow clock, later');
    } finally {
      for (const m of mesh.nodes) m.setReachable(true);
    }
    await everywhere(mesh, id, 'from the fast clock');
    // Once c holds a's version, its next edit stamps past it (updated_at + 1 us at least).
    expect((await api(c.url, 'PUT', `/api/v1/memories/${id}`, { content: 'slow clock, after seeing it' })).status).toBe(200);
    await everywhere(mesh, id, 'slow clock, after seeing it');
    const s = await stateOf(c, id);
    expect(Date.parse(`${s!.updatedAt}Z`)).toBeGreaterThan(Date.now() + 2 * MIN);
  }, 120_000);

  it('judges a signed request on the receiver clock: within +-FED_CLOCK_SKEW_MS of c accepted, beyond refused with x_memory_nonce_expired', async () => {
    const peer = await new FakePeer(a.id, readFileSync(path.join(mesh.keyDir, `${a.id}.priv`))).init();
    const nonceAt = (ms: number) => `${ms}.${randomUUID()}`;
    const body = { sender_agent_id: a.id, memories: [] };
    const now = Date.now();
    // c's clock reads now - 3 min: +6 min real is +9 min for c, +8 min real is +11 min.
    expect((await send(c.url, peer.push(body, { nonce: nonceAt(now + 6 * MIN) }))).status).toBe(200);
    expect(await send(c.url, peer.push(body, { nonce: nonceAt(now + 8 * MIN) }))).toMatchObject({ status: 401, json: { error: 'x_memory_nonce_expired' } });
    expect((await send(c.url, peer.push(body, { nonce: nonceAt(now - 12 * MIN) }))).status).toBe(200);
    expect(await send(c.url, peer.push(body, { nonce: nonceAt(now - 14 * MIN) }))).toMatchObject({ status: 401, json: { error: 'x_memory_nonce_expired' } });
    // b, on time, refuses the -12 min nonce c accepted: each receiver judges on its own clock.
    expect(await send(b.url, peer.push(body, { nonce: nonceAt(now - 12 * MIN) }))).toMatchObject({ status: 401, json: { error: 'x_memory_nonce_expired' } });
  });

  it('refuses a replicated row stamped beyond FED_CLOCK_SKEW_MS ahead of the receiver clock (FUTURE_TIMESTAMP) and applies one within it', async () => {
    const peer = await new FakePeer(a.id, readFileSync(path.join(mesh.keyDir, `${a.id}.priv`))).init();
    const now = Date.now();
    const within = wireMemory({ namespace: 'skew/future', title: 'within', created_at: formatTimestamp((now - MIN) * 1000), updated_at: formatTimestamp((now + 6 * MIN) * 1000), metadata: { agent_id: 'skew-test' } });
    const beyond = wireMemory({ namespace: 'skew/future', title: 'beyond', created_at: formatTimestamp((now - MIN) * 1000), updated_at: formatTimestamp((now + 8 * MIN) * 1000), metadata: { agent_id: 'skew-test' } });
    const r = await send(c.url, peer.push({ sender_agent_id: a.id, memories: [within, beyond] }));
    expect(r.status).toBe(200);
    const byId = Object.fromEntries((r.json.results as Array<{ id: string; status: string; reason?: string }>).map((x) => [x.id, x]));
    expect(byId[within.id as string]).toMatchObject({ status: 'applied' });
    expect(byId[beyond.id as string]).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/^FUTURE_TIMESTAMP/) });
    expect(await stateOf(c, beyond.id as string)).toBeNull();
  });
});

describe('a node further ahead than FED_CLOCK_SKEW_MS: a 60 s ahead, allowance 20 s', () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await startProcessMesh(
      3,
      { FED_QUORUM_W: '1', FED_CLOCK_SKEW_MS: '20000', CATCHUP_INTERVAL_MS: '2000', DLQ_REPLAY_INTERVAL_MS: '2000' },
      { nodeEnv: skewEnv([60_000, 0, 0]) },
    );
  }, 90_000);
  afterAll(async () => {
    await mesh?.destroy();
  });

  it('is cut off while its clock is wrong (signed requests refused as expired, its writes wait, none lost); with the clock fixed its rows are refused as FUTURE_TIMESTAMP until their time, then converge', async () => {
    const [a, b, c] = mesh.nodes as [MeshProcess, MeshProcess, MeshProcess];
    const checker = new SetChecker('clock-skew-beyond', mesh.nodes.map((m) => view(m, mesh.nodes)));
    checker.startSampling();
    const writes = await checker.burst([a], 12, { concurrency: 1, timeoutMs: 10_000, mix: 'creates' });
    expect(writes.every((w) => w.outcome === 'acked')).toBe(true);
    // Longer than a few push attempts and catch-up ticks: none of a's rows reaches b or c.
    await sleep(6000);
    const ids = writes.map((w) => w.id);
    for (const m of [b, c]) {
      const [r] = await m.db.database.sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM memories WHERE id = ANY(${m.db.database.sql.array(ids)}::text[])`;
      expect(r!.n, `${m.id} holds none of a's rows while a's clock is 60 s ahead`).toBe(0);
    }
    expect(`${b.proc.output()}${c.proc.output()}${a.proc.output()}`).toMatch(/x_memory_nonce_expired/);
    // The operator fixes a's clock.
    checker.markFault();
    await a.proc.stop();
    a.env.MEMFED_TEST_CLOCK_SKEW_MS = '0';
    await a.restart();
    checker.markHealed();
    // Its rows are still stamped ~45 s ahead of b and c: refused as FUTURE_TIMESTAMP
    // (dead-lettered as skipped at a), never applied early, never dropped.
    await waitFor(async () => {
      const [r] = await a.db.database.sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM federation_push_dlq WHERE failure_class = 'skipped' AND last_error LIKE 'FUTURE_TIMESTAMP%'`;
      return r!.n > 0;
    }, { timeoutMs: 20_000, what: "a's rows dead-lettered as FUTURE_TIMESTAMP by its peers" });
    const refusedUntil = Date.now();
    for (const m of [b, c]) {
      const [r] = await m.db.database.sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM memories WHERE id = ANY(${m.db.database.sql.array(ids)}::text[])`;
      expect(r!.n, `${m.id} applied none of a's rows before their time`).toBe(0);
    }
    const report = await checker.verify({ deadlineMs: 90_000 });
    const [latest] = await a.db.database.sql<Array<{ at: string }>>`SELECT max(updated_at)::text AS at FROM memories WHERE id = ANY(${a.db.database.sql.array(ids)}::text[])`;
    const refusals = await b.db.database.sql<Array<{ code: string; status: string; n: number }>>`SELECT code, status, count(*)::int AS n FROM catchup_refusals GROUP BY 1, 2`;
    const dlq = await a.db.database.sql<Array<{ status: string; failure_class: string; n: number }>>`SELECT status, failure_class, count(*)::int AS n FROM federation_push_dlq GROUP BY 1, 2`;
    console.log(summarize(report, { skew: `${a.id} +60 s, allowance 20 s, then fixed`, refusedUntilMs: refusedUntil - Date.now(), latestStamp: latest?.at, dlqAtA: dlq, catchupRefusalsAtB: refusals }));
    expect(problems(report, { acked: 12, samples: 5 })).toEqual([]);
    // The pulls refused the same rows visibly (cursor form: recorded, then passed).
    expect(refusals.every((r) => r.code === 'FUTURE_TIMESTAMP')).toBe(true);
  }, 180_000);
});
