import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

// Everything here goes through the JSON API the Bull Board page itself calls.
const BEARER = { authorization: 'Bearer board-token' };
const board = (p: string) => api(n.url, 'GET', `/admin/queues/api${p}`, undefined, BEARER);
const pushJob = async (id: string) => (await board(`/queues/push/${encodeURIComponent(id)}`)).json as { job: { attempts: number; timestamp: number; processedOn: number; delay: number; stacktrace: string[]; returnValue: any }; status: string };
const allLog = async (id: string) => (await board(`/queues/push/${encodeURIComponent(id)}/logs`)).json as string[];
// A run may first wait for its commit to pass the feed horizon (same attempt, its own line): not asserted here.
const HORIZON_WAIT = /^attempt \d\/8 waits: the commit that asked for this run /;
const jobLog = async (id: string) => (await allLog(id)).filter((l) => !HORIZON_WAIT.test(l));

const FAILED_LINE = /^attempt (\d)\/8 failed: \[transient\] POST \/api\/v1\/sync\/push to peer-flaky: HTTP 503 .* \| next try in (\d+(?:\.\d)?) s \(at (\d\d:\d\d:\d\d) UTC\) \| after attempt 8\/8: the reconciler re-enqueues the peer; its cursor has not moved$/;

let n: TestNode;
let peer: UpstreamReceiver;

beforeAll(async () => {
  const keyDir = newKeyDir();
  peer = await new UpstreamReceiver('peer-flaky', keyDir).start();
  peer.failWith = { status: 503 };
  n = await startTestNode({ id: 'board-logs', keyDir, peers: [{ id: 'peer-flaky', url: peer.url }], env: { ADMIN_TOKEN: 'board-token' } });
});
afterAll(async () => {
  await n?.destroy();
  await peer?.stop();
});

describe('Bull Board job log of a push that fails, retries and then has its row refused', () => {
  let jobId: string;
  let memoryId: string;

  it('shows each failed attempt as one line with its number, class, next try and what follows the last', async () => {
    const w = await api(n.url, 'POST', '/api/v1/memories', { title: 'flaky', content: 'x' });
    expect(w.status).toBe(201);
    memoryId = w.json.id;
    // Once the peer answers again, it refuses this row.
    peer.refuse.add(memoryId);
    jobId = await waitFor(async () => {
      const r = await board('/queues?activeQueue=push&status=delayed');
      const job = r.json.queues.find((q: { name: string }) => q.name === 'push')?.jobs?.find((j: { name: string }) => j.name === 'push.deliver peer-flaky');
      return job && (await jobLog(job.id)).length >= 2 ? (job.id as string) : undefined;
    }, { timeoutMs: 20_000, what: 'a delayed push job with two failed attempts in its log' });
    const { job, status } = await pushJob(jobId);
    const logs = await jobLog(jobId);
    expect(status).toBe('delayed');
    expect(logs.length).toBe(job.attempts);
    logs.forEach((line, i) => expect(line.match(FAILED_LINE)?.[1]).toBe(String(i + 1)));
    // The timeline's "Will run at" (added at + delay) is when the next try really runs:
    // after the failed attempt started, by the delay its log line announced.
    const [, , announced, clock] = logs.at(-1)!.match(FAILED_LINE)!;
    const runsAt = job.timestamp + job.delay;
    expect(runsAt - job.processedOn).toBeGreaterThanOrEqual(Number(announced) * 1000 - 50);
    expect(runsAt - job.processedOn).toBeLessThanOrEqual(Number(announced) * 1000 + 500);
    expect([runsAt - 1000, runsAt, runsAt + 1000].map((t) => new Date(t).toISOString().slice(11, 19))).toContain(clock);
    // Expected peer failures: one line per attempt in the Error tab, no stack frames.
    expect(job.stacktrace).toHaveLength(job.attempts);
    for (const trace of job.stacktrace) expect(trace).toMatch(/^\[transient\] POST \/api\/v1\/sync\/push to peer-flaky: HTTP 503 [^\n]*$/);
  });

  it('ends with the refusal and its reason in the completed job, and the attempt that completed', async () => {
    peer.failWith = null;
    const done = await waitFor(async () => {
      const r = await pushJob(jobId);
      return r.status === 'completed' ? r : undefined;
    }, { timeoutMs: 20_000, what: 'the push job to complete' });
    const logs = await jobLog(jobId);
    const failed = logs.filter((l) => FAILED_LINE.test(l));
    expect(failed.length).toBeGreaterThanOrEqual(2);
    expect(logs.slice(failed.length)).toEqual([
      expect.stringMatching(/^peer refused 1 of 1 rows: dead-lettered \(memfed dlq list --peer peer-flaky\), the cursor passed them \| first reason: peer reported skipped \| the result lists 1 with reasons$/),
      expect.stringMatching(new RegExp(`^attempt ${failed.length + 1}/8 completed in \\d+(\\.\\d)? s$`)),
    ]);
    expect(done.job.returnValue).toMatchObject({
      deadLettered: 1,
      rows: 0,
      refused: [{ memoryId, op: 'upsert', failureClass: 'skipped', reason: 'peer reported skipped' }],
    });
  });

  it("logs a throttled run with the peer's Retry-After, as the same attempt", async () => {
    peer.failWith = { status: 429, headers: { 'retry-after': '1' } };
    expect((await api(n.url, 'POST', '/api/v1/memories', { title: 'throttled', content: 'y' })).status).toBe(201);
    const throttled = await waitFor(async () => {
      const r = await board('/queues?activeQueue=push&status=delayed');
      const job = r.json.queues.find((q: { name: string }) => q.name === 'push')?.jobs?.find((j: { name: string }) => j.name === 'push.deliver peer-flaky');
      return job && (await jobLog(job.id)).length > 0 ? (job.id as string) : undefined;
    }, { timeoutMs: 20_000, what: 'a throttled push job' });
    peer.failWith = null;
    const logs = await jobLog(throttled);
    expect(logs[0]).toMatch(/^attempt 1\/8 throttled: \[throttle\] POST \/api\/v1\/sync\/push to peer-flaky: HTTP 429 .* \| next try in 1\.0 s \(at \d\d:\d\d:\d\d UTC\), the same attempt \(a throttle uses none\)$/);
    await waitFor(async () => ((await pushJob(throttled)).status === 'completed' ? true : undefined), { timeoutMs: 20_000, what: 'the throttled job to complete' });
    expect((await jobLog(throttled)).at(-1)).toMatch(/^attempt 1\/8 completed in /);
  });
});
