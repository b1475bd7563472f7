import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { REDIS_URL, waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

let n: TestNode;
let receiver: UpstreamReceiver;
let sender: FakePeer;

beforeAll(async () => {
  const keyDir = newKeyDir();
  // One peer identity, two faces: a receiver for our pushes, a sender that contacts us.
  receiver = await new UpstreamReceiver('peer-u', keyDir).start();
  sender = await new FakePeer('peer-u').init();
  sender.enrolIn(keyDir);
  n = await startTestNode({ id: 'recovering', keyDir, peers: [{ id: 'peer-u', url: receiver.url }], env: { CATCHUP_INTERVAL_MS: '600000', RECONCILE_INTERVAL_MS: '600000' } });
});
afterAll(async () => {
  await n?.destroy();
  await receiver?.stop();
});

describe('a peer that comes back', () => {
  it('gets its backlog at once when it contacts us, not after the push backoff', async () => {
    receiver.failWith = { status: 503, headers: { 'retry-after': '60' } };
    const w = await api(n.url, 'POST', '/api/v1/memories', { title: 'held back', content: 'x' });
    expect(w.status).toBe(201);
    // The push failed and now waits out a 60 s Retry-After.
    await waitFor(async () => (await n.db.database.sql`SELECT last_error_class FROM peer_cursors WHERE peer_id = 'peer-u'`)[0]?.last_error_class === 'transient', { what: 'push failure recorded' });
    // the backlog shows as push lag for the peer (once the collector has sampled it)
    const lagRows = (text: string) => Number(text.match(/memfed_peer_lag_rows\{peer="peer-u",node="recovering",role="all",process="[^"]+"\} (\d+)/)?.[1] ?? 0);
    const m = await waitFor(async () => {
      const r = await api(n.url, 'GET', '/metrics');
      return lagRows(r.text) >= 1 ? r : undefined;
    }, { what: 'push lag reported' });
    expect(lagRows(m.text)).toBeGreaterThanOrEqual(1);
    expect(Number(m.text.match(/memfed_peer_lag_seconds\{peer="peer-u",node="recovering",role="all",process="[^"]+"\} ([\d.e+-]+)/)?.[1])).toBeGreaterThan(0);
    receiver.failWith = null;
    expect(receiver.received.has(w.json.id)).toBe(false);
    // The peer talks to us: that is how we learn it is back.
    const hello = await send(n.url, sender.push({ sender_agent_id: 'peer-u', memories: [] }));
    expect(hello.status).toBe(200);
    await waitFor(async () => receiver.received.has(w.json.id), { timeoutMs: 10_000, what: 'delivered well before the 60 s backoff' });
    // and the failure state is cleared by the successful push
    await waitFor(async () => (await n.db.database.sql`SELECT last_error_class FROM peer_cursors WHERE peer_id = 'peer-u'`)[0]?.last_error_class === null);
    await waitFor(async () => /memfed_peer_lag_rows\{peer="peer-u",node="recovering",role="all",process="[^"]+"\} 0/.test((await api(n.url, 'GET', '/metrics')).text), { what: 'lag back to 0' });
  });

  it('a throttled push (429) does not burn attempts', async () => {
    receiver.failWith = { status: 429, headers: { 'retry-after': '1' } };
    const at = receiver.requests;
    const w = await api(n.url, 'POST', '/api/v1/memories', { title: 'throttled', content: 'x' });
    expect(w.status).toBe(201);
    const { Queue } = await import('bullmq');
    const conn = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const q = new Queue('push', { connection: conn, prefix: n.prefix });
    try {
      // Several throttles in a row (Retry-After 1 s each)...
      await waitFor(async () => receiver.requests >= at + 4, { timeoutMs: 15_000, what: 'several throttled attempts' });
      const jobs = await q.getJobs(['delayed', 'waiting', 'active'], 0, 10);
      const push = jobs.find((j) => j.data.peerId === 'peer-u');
      expect(push).toBeDefined();
      // ...and the job has not used up a single attempt.
      expect(push!.attemptsMade).toBe(0);
    } finally {
      receiver.failWith = null;
      await q.close();
      conn.disconnect();
    }
    await waitFor(async () => receiver.received.has(w.json.id), { timeoutMs: 10_000, what: 'delivered after throttling ends' });
  });
});
