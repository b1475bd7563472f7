import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusReport } from '../../src/status/report.js';
import { waitFor } from '../helpers/env.js';
import { api } from '../helpers/node.js';
import { spawnMemfed } from '../helpers/process.js';
import { startProcessMesh, type MeshProcess } from '../helpers/process-mesh.js';
import { QUEUE_NAMES } from '../../src/queue-names.js';

/*
 * `memfed status` and GET /api/v1/admin/status on two real `memfed all` processes: b
 * shows active with no lag once a write converged; after b stops, the next write makes a
 * show b failing (streak, last error) within the first push retry interval; the admin
 * route answers the same report, and only with the token.
 */
let mesh: Awaited<ReturnType<typeof startProcessMesh>>;
let a: MeshProcess;
let b: MeshProcess;
const TOKEN = 'status-admin-token';

beforeAll(async () => {
  // A short catch-up period: a pull that failed while the nodes were starting is retried soon.
  mesh = await startProcessMesh(2, { ADMIN_TOKEN: TOKEN, CATCHUP_INTERVAL_MS: '1000' });
  [a, b] = mesh.nodes as [MeshProcess, MeshProcess];
});
afterAll(async () => mesh?.destroy());

async function memfedStatus(...args: string[]): Promise<{ code: number | string; out: string }> {
  const p = spawnMemfed(['status', ...args], a.env);
  const code = await p.exited;
  return { code, out: p.stdout() };
}
async function statusJson(): Promise<StatusReport> {
  const r = await memfedStatus('--json');
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as StatusReport;
}
const peerB = (r: StatusReport) => r.peers.find((p) => p.id === b.id)!;
const write = async (title: string) => {
  const r = await api(a.url, 'POST', '/api/v1/memories', { title, content: title });
  expect(r.status).toBe(201);
  return r.json.id as string;
};
const adminStatus = (headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) => api(a.url, 'GET', '/api/v1/admin/status', undefined, headers);

/** Every key path of a JSON value (the report's shape, values aside). */
const shape = (v: unknown, at = ''): string[] =>
  v !== null && typeof v === 'object' ? Object.entries(v).flatMap(([k, x]) => [`${at}.${Array.isArray(v) ? '#' : k}`, ...shape(x, `${at}.${Array.isArray(v) ? '#' : k}`)]).filter((p, i, all) => all.indexOf(p) === i) : [];
/** What two reports taken a moment apart must agree on. */
const stable = (r: StatusReport) => ({
  nodeId: r.nodeId,
  peers: r.peers.map((p) => ({ id: p.id, url: p.url, state: p.state, failingPush: p.push.failureStreak > 0, errorClass: p.push.lastErrorClass, lagChanges: p.push.lagChanges, dlq: p.dlq })),
  queues: r.queues?.map((q) => ({ name: q.name, workers: q.workers })),
  auditHeadSeq: r.audit.headSeq,
});

describe('memfed status on a live mesh', () => {
  it('shows b active with no push lag once a write on a converged, in JSON, as a table, and through the admin route', async () => {
    // The repair run each scheduler starts with appends its audit event once over: let it
    // land first, so the audit head the two reads below compare does not move between them.
    await waitFor(async () => (await a.db.database.sql`SELECT 1 FROM audit_log WHERE kind = 'repair.completed'`).length > 0, { what: "a's first scheduled repair audited", timeoutMs: 30_000 });
    const id = await write('converges');
    await waitFor(async () => (await api(b.url, 'GET', `/api/v1/memories/${id}`)).status === 200, { what: 'b holds the write' });
    const r = await waitFor(
      async () => {
        const s = await statusJson();
        return peerB(s).state === 'active' && peerB(s).push.lagChanges === 0 && peerB(s).pull.lastSuccessAt !== null ? s : undefined;
      },
      { what: 'b active with push lag 0', timeoutMs: 30_000 },
    );
    expect(peerB(r)).toMatchObject({ url: b.url, state: 'active', push: { failureStreak: 0, lastError: null, lagChanges: 0, lagSeconds: 0 }, pull: { failureStreak: 0 }, dlq: { pending: 0, quarantined: 0 } });
    expect(peerB(r).push.lastSuccessAt).not.toBeNull();
    expect(r.nodeId).toBe(a.id);
    // `memfed all` runs one worker per queue, found through Redis.
    expect(Object.fromEntries(r.queues!.map((q) => [q.name, q.workers]))).toEqual(Object.fromEntries(QUEUE_NAMES.map((q) => [q, 1])));

    const text = await memfedStatus();
    expect(text.code).toBe(0);
    const row = text.out.split('\n').find((l) => l.startsWith(`${b.id} `))!;
    expect(row.split(/\s{2,}/).slice(0, 4)).toEqual([b.id, 'active', expect.stringMatching(/^\d+[smhd] ago$/), '0']);
    expect(text.out).toMatch(/^push\s+\d+\s+\d+\s+\d+\s+\d+\s+1$/m);
    expect(text.out).toMatch(/^audit: /m);

    const admin = await adminStatus();
    expect(admin.status).toBe(200);
    expect(shape(admin.json)).toEqual(shape(r));
    expect(stable(admin.json as StatusReport)).toEqual(stable(r));
  });

  it('shows b failing with its streak and last error within the first push retry interval after b stops', async () => {
    await b.proc.stop();
    const wroteAt = Date.now();
    await write('while b is down');
    // When the failure is on record (what the report reads): the first push attempt, right
    // after the commit, well inside the first retry interval (at most 500 ms) plus a loaded
    // machine's scheduling.
    await waitFor(async () => (await a.db.database.sql`SELECT failure_streak FROM peer_cursors WHERE peer_id = ${b.id}`)[0]?.failure_streak >= 1, { what: 'push failure recorded', intervalMs: 20, timeoutMs: 10_000 });
    const recordedAfter = Date.now() - wroteAt;
    expect(recordedAfter).toBeLessThan(2000);
    // The very next status run shows it.
    const r = await statusJson();
    const p = peerB(r);
    expect(p.state).toBe('failing');
    expect(p.push.failureStreak).toBeGreaterThanOrEqual(1);
    expect(p.push.lastError).toBeTruthy();
    expect(p.push.lastErrorClass).toBe('transient');
    expect(p.push.lagChanges).toBeGreaterThanOrEqual(1);

    const admin = await adminStatus();
    expect(admin.status).toBe(200);
    expect(shape(admin.json)).toEqual(shape(r));
    expect(stable(admin.json as StatusReport)).toEqual(stable(r));
    expect(peerB(admin.json as StatusReport).push.failureStreak).toBeGreaterThanOrEqual(p.push.failureStreak);

    const text = await memfedStatus();
    const row = text.out.split('\n').find((l) => l.startsWith(`${b.id} `))!;
    expect(row).toMatch(/ failing /);
    expect(row).toMatch(/push \d+/);
    expect(row).toMatch(/(push|pull) \d+s ago: /);
  });

  it('refuses the admin route without the token and with a wrong one (401 with a Basic challenge), as every admin route', async () => {
    expect((await adminStatus({})).status).toBe(401);
    expect((await adminStatus({ authorization: 'Bearer wrong' })).status).toBe(401);
  });
});
