import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ChaosCluster } from '../helpers/chaos-cluster.js';
import { SetChecker, problems, summarize } from '../helpers/checker.js';
import { waitFor } from '../helpers/env.js';
import { PrivateRedis } from '../helpers/private-redis.js';

/*
 * (h) Every node's queues live on a Redis of this test's own (never the shared 6379).
 * During a stream of writes it is SIGKILLed and, 3 s later, started again on the same
 * port with no persistence: every job, deduplication key, scheduler and nonce is gone.
 * Postgres holds the durable intent (cursors), so nothing may be lost.
 */
const OUTAGE_MS = 3000;

async function withRedis<T>(url: string, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  r.on('error', () => {});
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

interface Run {
  redis: PrivateRedis;
  cluster: ChaosCluster;
  checker: SetChecker;
  keysBefore: number;
  keysAfterRestart: number;
}

/** Three `memfed all` processes on a private Redis that is killed and restarted empty mid-writes. */
async function redisRestartRun(name: string, body: (run: Run) => Promise<void>): Promise<void> {
  const redis = await new PrivateRedis().start();
  let cluster: ChaosCluster | undefined;
  try {
    cluster = await ChaosCluster.create({
      nodes: ['a', 'b', 'c'],
      mode: 'process',
      proxied: false,
      redisUrl: redis.url,
      env: { FED_QUORUM_W: '1', FED_REQUEST_TIMEOUT_MS: '1500' },
    });
    const checker = new SetChecker(name, cluster.views());
    checker.startSampling();
    const writes = checker.burst(cluster.nodes, 2000, { concurrency: 3, spacingMs: 30, timeoutMs: 5000, retries: 2, maxMs: 9000 });
    await new Promise((r) => setTimeout(r, 2000));
    const keysBefore = await withRedis(redis.url, (r) => r.dbsize());
    await redis.stop();
    checker.markFault();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    await redis.start();
    const keysAfterRestart = await withRedis(redis.url, (r) => r.dbsize());
    checker.markHealed();
    await writes;
    await body({ redis, cluster, checker, keysBefore, keysAfterRestart });
  } finally {
    await cluster?.destroy();
    await redis.stop();
  }
}

describe('(h) Redis killed and restarted empty during writes', () => {
  it('loses no write: reconcilers re-enqueue from the cursors in Postgres', async () => {
    await redisRestartRun('redis-restart-empty', async ({ cluster, checker, keysBefore, keysAfterRestart }) => {
      const report = await checker.verify({ deadlineMs: 90_000 });
      console.log(summarize(report, { outageMs: OUTAGE_MS, keysBefore, keysAfterRestart }));
      const found = problems(report, { acked: 50, samples: 10 });
      if (found.length) console.log(cluster.logs());
      // The restart really wiped the queues (the nodes refill it as they reconnect).
      expect(keysBefore).toBeGreaterThan(keysAfterRestart);
      expect(found).toEqual([]);
    });
  });

  // Schedulers live in Redis only; workers check every 5 s and put back what is missing.
  it('restores the catch-up and DLQ replay schedulers on every node', async () => {
    await redisRestartRun('redis-restart-schedulers', async ({ redis, cluster }) => {
      await withRedis(redis.url, async (r) => {
        for (const n of cluster.nodes) {
          await waitFor(async () => (await r.zcard(`${n.prefix}:catchup:repeat`)) === n.peerIds.length && (await r.zcard(`${n.prefix}:dlq:repeat`)) === 1, {
            timeoutMs: 15_000,
            what: `${n.id}'s catch-up and DLQ schedulers restored after the Redis restart`,
          });
        }
      });
    });
  });
});
