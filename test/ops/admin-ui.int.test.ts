import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { REDIS_URL, freePort, waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { skipNote } from '../helpers/skip.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

const hasPromtool = (() => {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

let n: TestNode;
let worker: TestNode;
let peer: UpstreamReceiver;
const BEARER = { authorization: 'Bearer board-token' };

beforeAll(async () => {
  const keyDir = newKeyDir();
  peer = await new UpstreamReceiver('peer-refusing', keyDir).start();
  // The peer refuses our identity: a push fails as "unenrolled" at once.
  peer.failWith = { status: 401, headers: {} };
  n = await startTestNode({ id: 'board', role: 'api', keyDir, peers: [{ id: 'peer-refusing', url: peer.url }], env: { ADMIN_TOKEN: 'board-token', API_KEY: 'client-key' } });
  worker = await startTestNode({ id: 'board', role: 'worker', keyDir, db: n.db, prefix: n.prefix, peers: [{ id: 'peer-refusing', url: peer.url }], env: { ADMIN_TOKEN: 'board-token', API_KEY: 'client-key', WORKER_HTTP_PORT: String(await freePort()) } });
});
afterAll(async () => {
  await worker?.stop();
  await n?.destroy();
  await peer?.stop();
});

describe('Bull Board behind ADMIN_TOKEN', () => {
  it('guards the page, its assets and its API', async () => {
    const page = await api(n.url, 'GET', '/admin/queues');
    expect(page.status).toBe(401);
    expect(page.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect((await api(n.url, 'GET', '/admin/queues/api/queues')).status).toBe(401);
    const ok = await api(n.url, 'GET', '/admin/queues', undefined, BEARER);
    expect(ok.status).toBe(200);
    const css = ok.text.match(/href="(static\/css\/[^"]+)"/)?.[1];
    expect(css).toBeDefined();
    expect((await api(n.url, 'GET', `/admin/queues/${css}`)).status).toBe(401);
    expect((await api(n.url, 'GET', `/admin/queues/${css}`, undefined, BEARER)).status).toBe(200);
    const basic = { authorization: `Basic ${Buffer.from('ops:board-token').toString('base64')}` };
    const queues = await api(n.url, 'GET', '/admin/queues/api/queues', undefined, basic);
    expect(queues.status).toBe(200);
    expect(queues.json.queues.map((q: { name: string }) => q.name).sort()).toEqual(['audit', 'catchup', 'dlq', 'push', 'repair']);
  });

  it('answers a wrong token 401 with a Basic challenge, so a browser asks again', async () => {
    const wrongBasic = { authorization: `Basic ${Buffer.from('ops:nope').toString('base64')}` };
    for (const headers of [{ authorization: 'Bearer nope' }, wrongBasic]) {
      for (const p of ['/admin/queues', '/admin/queues/api/queues', '/api/v1/admin/dlq/stats']) {
        const r = await api(n.url, 'GET', p, undefined, headers);
        expect(r.status, p).toBe(401);
        expect(r.headers.get('www-authenticate'), p).toBe('Basic realm="memfed admin", charset="UTF-8"');
        expect(r.json, p).toEqual({ error: 'invalid admin token', code: 'ADMIN_TOKEN_INVALID' });
      }
    }
  });

  it('serves a page that needs no other host (no web fonts fetched, works offline)', async () => {
    const page = await api(n.url, 'GET', '/admin/queues', undefined, BEARER);
    expect(page.status).toBe(200);
    expect(page.text).not.toMatch(/fonts\.googleapis\.com|fonts\.gstatic\.com/);
    const refs = [...page.text.matchAll(/\b(?:href|src)\s*=\s*"([^"]*)"/g)].map((m) => m[1]!);
    expect(refs.filter((r) => r.startsWith('static/'))).not.toHaveLength(0);
    expect(refs.filter((r) => /^(?:[a-z]+:)?\/\//i.test(r))).toEqual([]);
    for (const css of refs.filter((r) => r.endsWith('.css'))) {
      const sheet = await api(n.url, 'GET', `/admin/queues/${css}`, undefined, BEARER);
      expect(sheet.status).toBe(200);
      expect(sheet.text).not.toMatch(/@import|url\(\s*["']?(?:https?:)?\/\//i);
    }
  });

  it('shows a failed push job with its peer, class and error', async () => {
    const w = await api(n.url, 'POST', '/api/v1/memories', { title: 'refused', content: 'x' }, { 'x-api-key': 'client-key' });
    expect(w.status).toBe(201);
    const failed = await waitFor(async () => {
      const r = await api(n.url, 'GET', '/admin/queues/api/queues?activeQueue=push&status=failed', undefined, BEARER);
      const push = r.json.queues.find((q: { name: string }) => q.name === 'push');
      return push?.jobs?.length ? push.jobs[0] : undefined;
    }, { timeoutMs: 20_000, what: 'failed push job' });
    expect(failed.name).toBe('push.deliver peer-refusing');
    expect(failed.data).toMatchObject({ peerId: 'peer-refusing' });
    expect(failed.failedReason).toMatch(/^\[unenrolled\] POST \/api\/v1\/sync\/push to peer-refusing: HTTP 401/);
    // An expected failure: its one line is the whole stack, and the log says what follows.
    expect(failed.stacktrace).toEqual([failed.failedReason]);
    const logs = (await api(n.url, 'GET', `/admin/queues/api/queues/push/${encodeURIComponent(failed.id)}/logs`, undefined, BEARER)).json;
    // Before it: the run may have waited for its commit to pass the feed horizon (same attempt).
    expect(logs.slice(0, -1)).toEqual(logs.slice(0, -1).map(() => expect.stringMatching(/^attempt 1\/8 waits: the commit that asked for this run \(\d+\/\d+\) is not below the feed horizon yet/)));
    expect(logs.slice(-1)).toEqual([expect.stringMatching(/^attempt 1\/8 failed: \[unenrolled\] POST \/api\/v1\/sync\/push to peer-refusing: HTTP 401 .*\(the reconciler tries again in 60 s\) \| not retried \(unrecoverable\): the reconciler re-enqueues the peer; its cursor has not moved$/)]);
  });
});

describe('Bull Board write actions', () => {
  const chain = async () => n.db.database.sql<{ seq: number; kind: string; canonical: string }[]>`SELECT seq, kind, canonical FROM audit_log ORDER BY seq`;

  it('the audit queue is read-only in the board, and the refusal is in the service envelope', async () => {
    const add = await api(n.url, 'POST', '/admin/queues/api/queues/audit/add', { name: 'audit.append', data: { kind: 'memory.deleted', actor: 'forger', details: {} } }, BEARER);
    expect(add.status).toBe(405);
    expect(add.json).toEqual({ error: 'queue read only', code: 'BOARD_QUEUE_READ_ONLY' });
    const missing = await api(n.url, 'PUT', '/admin/queues/api/queues/nosuch/pause', undefined, BEARER);
    expect(missing.status).toBe(404);
    expect(missing.json).toEqual({ error: 'queue not found', code: 'BOARD_QUEUE_NOT_FOUND' });
  });

  it('a job put straight into the audit queue appends nothing but the outbox rows it names, once', async () => {
    const conn = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const q = new Queue('audit', { connection: conn, prefix: n.prefix });
    try {
      await waitFor(async () => (await chain()).length > 0, { what: 'a first chain entry' });
      const before = await chain();
      const [appended] = await n.db.database.sql<{ id: number }[]>`SELECT id FROM audit_outbox WHERE status <> 'pending' ORDER BY id LIMIT 1`;
      const forged = await q.add('audit.append', { outboxIds: [appended!.id], kind: 'memory.deleted', actor: 'forger', details: { forged: true } } as never);
      const junk = await q.add('audit.append', { kind: 'memory.deleted', actor: 'forger' } as never);
      await waitFor(async () => (await forged.isCompleted()) && (await junk.isCompleted()), { what: 'the forged jobs ran' });
      const after = await chain();
      expect(after.filter((e) => e.canonical.includes('forger'))).toEqual([]);
      expect(after.slice(0, before.length)).toEqual(before);
    } finally {
      await q.close();
      conn.disconnect();
    }
  });

  it('audits each write action with the admin as actor', async () => {
    expect((await api(n.url, 'PUT', '/admin/queues/api/queues/push/pause', undefined, BEARER)).status).toBe(200);
    expect((await api(n.url, 'PUT', '/admin/queues/api/queues/push/resume', undefined, BEARER)).status).toBe(200);
    const actions = await waitFor(async () => {
      const rows = (await chain()).filter((e) => e.kind === 'board.action');
      const parsed = rows.map((e) => JSON.parse(e.canonical) as { actor: string; details: { method: string; path: string; status: number } });
      return parsed.filter((a) => a.details.path.startsWith('/admin/queues/api/queues/push/')).length >= 2 ? parsed : undefined;
    }, { timeoutMs: 20_000, what: 'board actions in the chain' });
    expect(actions.map((a) => [a.actor, a.details.method, a.details.path, a.details.status])).toEqual(
      expect.arrayContaining([
        ['admin', 'PUT', '/admin/queues/api/queues/push/pause', 200],
        ['admin', 'PUT', '/admin/queues/api/queues/push/resume', 200],
      ]),
    );
  });
});

const bothMetrics = async () => {
  // A request of its own first, so the API has a request histogram to show.
  expect((await api(n.url, 'GET', '/api/v1/memories', undefined, { 'x-api-key': 'client-key' })).status).toBe(200);
  const apiMetrics = await api(n.url, 'GET', '/metrics', undefined, { 'x-api-key': 'client-key' });
  const workerMetrics = await api(worker.node.workerUrl!, 'GET', '/metrics', undefined, { 'x-api-key': 'client-key' });
  return { apiMetrics, workerMetrics };
};

describe('metrics from both roles', () => {
  it('expose queue, DLQ, refusal breaker, catch-up and audit figures', async () => {
    const { apiMetrics, workerMetrics } = await bothMetrics();
    for (const body of [apiMetrics.text, workerMetrics.text]) {
      for (const name of ['memfed_queue_jobs{queue="push",state="failed"', 'memfed_queue_oldest_waiting_age_seconds', 'ai_memory_federation_push_dlq_depth{peer="peer-refusing"', 'memfed_push_refusal_breaker_open{peer="peer-refusing"', 'memfed_catchup_last_success_timestamp_seconds', 'memfed_audit_head_sequence', 'memfed_process_cpu_seconds_total']) {
        expect(body).toContain(name);
      }
    }
    expect(apiMetrics.text).toContain('memfed_http_request_duration_seconds_bucket');
    expect(workerMetrics.text).toContain('role="worker"');
  });

  it.skipIf(!hasPromtool)(`pass promtool check metrics${skipNote(!hasPromtool, 'promtool not on PATH (apt-get install prometheus)')}`, async () => {
    const { apiMetrics, workerMetrics } = await bothMetrics();
    for (const body of [apiMetrics.text, workerMetrics.text]) {
      const out = execFileSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
      expect(out).not.toMatch(/error/i);
    }
  });
});
