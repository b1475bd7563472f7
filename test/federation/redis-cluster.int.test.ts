import { describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { QUEUE_NAMES } from '../../src/queue-names.js';
import { NonceStore } from '../../src/federation/nonces.js';
import { RefusalBreaker } from '../../src/federation/refusal-breaker.js';
import { createRedis } from '../../queues/connection.js';
import { queuePrefixFor } from '../../queues/definition.js';
import { openQueueStatus } from '../../queues/status.js';
import { createTestDatabase } from '../helpers/db.js';
import { freePort, waitFor } from '../helpers/env.js';
import { api, newKeyDir } from '../helpers/node.js';
import { clusterTag, usePrivateCluster } from '../helpers/cluster-suite.js';
import { startProcessMesh } from '../helpers/process-mesh.js';
import { spawnMemfed } from '../helpers/process.js';
import { skipNote } from '../helpers/skip.js';

/*
 * memfed on a Redis Cluster of the test's own (3 primaries, 3 replicas, free ports):
 * REDIS_CLUSTER_NODES replaces REDIS_URL, each node's QUEUE_PREFIX carries a hash tag, and
 * every queue gets its own tag (its keys share a slot, the queues spread over the shards).
 */
const cluster = usePrivateCluster();
const { missing } = cluster;

describe.skipIf(missing !== null)(`memfed on a Redis Cluster${skipNote(missing !== null, missing ?? '')}`, () => {
  it('a three-node mesh on the cluster accepts writes with a quorum, converges, spreads its queues over the shards and shows them on Bull Board', async () => {
    const mesh = await startProcessMesh(3, { REDIS_CLUSTER_NODES: cluster.topology().seeds, FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '15000', ADMIN_TOKEN: 'board-token' }, { queuePrefix: clusterTag });
    try {
      const ids: string[] = [];
      for (const n of mesh.nodes) {
        const r = await api(n.url, 'POST', '/api/v1/memories', { title: `from ${n.id}`, content: 'on a cluster' });
        expect(r.status).toBe(201);
        expect(r.json.quorum_acks).toBeGreaterThanOrEqual(2);
        ids.push(r.json.id);
      }
      for (const n of mesh.nodes) for (const id of ids) await waitFor(async () => (await api(n.url, 'GET', `/api/v1/memories/${id}`)).status === 200, { timeoutMs: 40_000, what: `${id} on ${n.id}` });

      // Each queue's keys live in its own slot; the node's queues are not all on one shard.
      const shards = new Set<number>();
      for (const q of QUEUE_NAMES) shards.add((await cluster.topology().primaryOf(queuePrefixFor(clusterTag('proc-a'), q))).port);
      expect(shards.size).toBeGreaterThan(1);
      const client = new Cluster(cluster.topology().seeds.split(',').map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })));
      try {
        expect(await client.exists(`${queuePrefixFor(clusterTag('proc-a'), 'push')}:push:meta`)).toBe(1);
      } finally {
        client.disconnect();
      }

      const board = await api(mesh.nodes[0]!.url, 'GET', '/admin/queues/api/queues', undefined, { authorization: 'Bearer board-token' });
      expect(board.status).toBe(200);
      expect((board.json.queues as Array<{ name: string }>).map((q) => q.name).sort()).toEqual([...QUEUE_NAMES].sort());
    } finally {
      await mesh.destroy();
    }
  }, 90_000);

  it('the nonce store, the refusal breaker and the status report work on the cluster', async () => {
    const target = { kind: 'cluster' as const, nodes: cluster.topology().seeds.split(',').map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })) };
    const redis = createRedis(target, 'producer', 'test');
    const status = openQueueStatus(target, clusterTag('status'));
    try {
      await waitFor(async () => redis.status === 'ready', { what: 'cluster client ready' });
      const nonces = new NonceStore(redis, clusterTag('nonces'), 300_000);
      const memfedNonce = `${Date.now()}.0b7c8d0e-1111-4222-8333-444455556666`;
      expect(await nonces.claim('peer-x', memfedNonce, 'memfed')).toBe(true);
      expect(await nonces.claim('peer-x', memfedNonce, 'memfed')).toBe(false);
      expect(await nonces.claim('peer-x', 'bare-1', 'bare')).toBe(true);
      expect(await nonces.claim('peer-x', 'bare-1', 'bare')).toBe(false);
      const breaker = new RefusalBreaker(redis, clusterTag('breaker'), { batches: 2, probeMs: 60_000 });
      expect(await breaker.record('peer-x', 'refused_whole', 'r')).toBe(null);
      expect(await breaker.record('peer-x', 'refused_whole', 'r')).toBe('opened');
      expect(await breaker.mode('peer-x')).toBe('whole');
      const queues = await status.source();
      expect(queues.map((q) => q.name)).toEqual([...QUEUE_NAMES]);
    } finally {
      await status.close();
      redis.disconnect();
    }
  });

  it('refuses to start with a QUEUE_PREFIX without a hash tag on a cluster, in one readable line (exit 2)', async () => {
    const p = spawnMemfed(['all'], { NODE_ID: 'plain', REDIS_CLUSTER_NODES: cluster.topology().seeds, QUEUE_PREFIX: 'mf-plain' });
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain('QUEUE_PREFIX: "mf-plain" has no hash tag; on a Redis Cluster (REDIS_CLUSTER_NODES) use one, e.g. {mf-plain}');
    expect(p.output()).not.toContain('CROSSSLOT');
  });

  it('with no cluster node answering: waits STARTUP_WAIT_MS, then exits 1 with one line naming the seeds', async () => {
    const nobody = await freePort();
    const db = await createTestDatabase();
    try {
      const p = spawnMemfed(['all'], { NODE_ID: 'lonely', DATABASE_URL: db.url, FED_KEY_DIR: newKeyDir(), REDIS_CLUSTER_NODES: `127.0.0.1:${nobody}`, QUEUE_PREFIX: '{lonely}', STARTUP_WAIT_MS: '1000' });
      expect(await p.exited).toBe(1);
      expect(p.output()).toContain(`memfed: all failed to start: cannot reach Redis at cluster 127.0.0.1:${nobody} (no cluster node answered`);
      expect(p.output()).toContain('waiting for Redis');
    } finally {
      await db.drop();
    }
  });
});
