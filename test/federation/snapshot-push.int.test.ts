import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

/*
 * The push side of snapshot bootstrap, against a real node and an upstream-style
 * receiver (counter answers, `deletions` lane): the peer is down longer than the lag
 * bound, retention prunes the feed past its cursor, and when it is back it is sent the
 * snapshot in normal signed push batches, its cursor set to the snapshot position, and
 * then live writes as usual.
 */
let n: TestNode;
let peer: UpstreamReceiver;

const write = async (title: string) => {
  const r = await api(n.url, 'POST', '/api/v1/memories', { title, content: title, tier: 'long', namespace: 'snap/push' });
  expect(r.status).toBe(201);
  return r.json.id as string;
};
const metric = async (name: string, labels: Record<string, string> = {}) =>
  (await api(n.url, 'GET', '/metrics')).text
    .split('\n')
    .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);
const cursorBehind = async () => (await n.db.database.sql`SELECT (c.txid, c.seq) < (h.pruned_txid, h.pruned_seq) AS behind FROM peer_cursors c, feed_horizon h WHERE c.peer_id = 'ai-memory-1'`)[0]?.behind as boolean | undefined;

beforeAll(async () => {
  const keyDir = newKeyDir();
  peer = await new UpstreamReceiver('ai-memory-1', keyDir).start();
  n = await startTestNode({ id: 'memfed-retention', keyDir, peers: [{ id: 'ai-memory-1', url: peer.url }], env: { FED_QUORUM_W: '1', FEED_RETENTION_MS: '1000', FEED_MAX_LAG_MS: '2000', RETENTION_INTERVAL_MS: '300', PUSH_BATCH_MAX: '7' } });
}, 60_000);
afterAll(async () => {
  await n?.destroy();
  await peer?.stop();
});

describe('a peer whose delivery cursor falls behind the retained horizon', () => {
  const live: string[] = [];
  const gone: string[] = [];

  it('down longer than FEED_MAX_LAG_MS: it no longer holds the feed, which is pruned past its cursor', async () => {
    peer.failWith = { status: 503 };
    for (let i = 0; i < 20; i++) live.push(await write(`while down ${i}`));
    for (const id of live.splice(0, 3)) {
      expect((await api(n.url, 'DELETE', `/api/v1/memories/${id}`)).status).toBe(200);
      gone.push(id);
    }
    await waitFor(async () => (await cursorBehind()) === true && (await n.db.database.sql`SELECT count(*)::int AS c FROM change_feed`)[0]!.c === 0, { timeoutMs: 90_000, intervalMs: 200, what: 'the feed pruned past the down peer' });
    expect(await metric('memfed_feed_peers_behind_horizon')).toBe(1);
    expect(await metric('memfed_feed_rows')).toBe(0);
    expect(peer.received.size).toBe(0);
  }, 120_000);

  it('back: it is pushed the snapshot (live rows and deletions, normal push batches), its cursor set to the snapshot position, then follows live writes', async () => {
    peer.failWith = null;
    await waitFor(async () => live.every((id) => peer.received.has(id)) && gone.every((id) => peer.deleted.has(id)), { timeoutMs: 90_000, intervalMs: 250, what: 'the snapshot pushed to the peer' });
    await waitFor(async () => (await cursorBehind()) === false, { timeoutMs: 30_000, intervalMs: 200, what: "the peer's cursor at the snapshot position" });
    expect(await metric('memfed_snapshot_bootstraps_total', { peer: 'ai-memory-1', direction: 'push', outcome: 'completed' })).toBe(1);
    expect(await metric('memfed_snapshot_rows_total', { peer: 'ai-memory-1', direction: 'pushed' })).toBe(20);
    // 20 rows in batches of PUSH_BATCH_MAX=7: at least 3 push requests.
    expect(await metric('memfed_snapshot_pages_total', { peer: 'ai-memory-1', direction: 'pushed' })).toBeGreaterThanOrEqual(3);
    expect(await metric('memfed_feed_peers_behind_horizon')).toBe(0);
    expect((await n.db.database.sql`SELECT count(*)::int AS c FROM feed_snapshots`)[0]!.c).toBe(0);
    const id = await write('after the bootstrap');
    await waitFor(async () => peer.received.has(id), { timeoutMs: 30_000, intervalMs: 200, what: 'a live write delivered' });
  }, 150_000);
});
