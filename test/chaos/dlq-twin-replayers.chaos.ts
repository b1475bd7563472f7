import { describe, expect, it } from 'vitest';
import { ChaosCluster } from '../helpers/chaos-cluster.js';
import { SetChecker, problems, summarize } from '../helpers/checker.js';
import { waitFor } from '../helpers/env.js';
import { newKeyDir } from '../helpers/node.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

/*
 * (j) Two DLQ replayers at once. Node a (api + a push/catch-up/audit worker) pushes to an
 * ai-memory-style receiver that counts every delivery per id. Phase 1: the receiver
 * refuses everything (422), so every row is isolated and dead-lettered. Phase 2: the
 * receiver accepts, the link gets slow (so replay rounds overlap), and two worker
 * processes serving only the `dlq` queue replay the backlog at the same time, ticking
 * every 200 ms with small takes (64 rows). The workload is mixed (creates, updates,
 * deletes, bulk), so the backlog holds one pending row per id (its latest state or its
 * tombstone). No row may be delivered twice.
 */
const OPS = 400;
const PUSH = 'POST /api/v1/sync/push';

describe('(j) two DLQ replayers at once', () => {
  it('replays every dead-lettered row exactly once', async () => {
    const keyDir = newKeyDir();
    const receiver = await new UpstreamReceiver('up', keyDir).start();
    const proxy = await new FaultProxy({ port: Number(new URL(receiver.url).port) }, { name: 'a->up' }).start();
    let cluster: ChaosCluster | undefined;
    try {
      cluster = await ChaosCluster.create({
        keyDir,
        nodes: [{ id: 'a', autostart: false }],
        mode: 'process',
        proxied: false,
        externalPeers: { a: [{ id: 'up', url: proxy.url }] },
        env: {
          FED_QUORUM_W: '1',
          PUSH_BATCH_MAX: '16',
          DLQ_REPLAY_INTERVAL_MS: '200',
          DLQ_REPLAY_MAX_BATCH: '64',
          DLQ_MAX_REPLAY_ATTEMPTS: '100000',
          DLQ_CONCURRENCY: '1',
          CATCHUP_INTERVAL_MS: '600000',
          FED_REQUEST_TIMEOUT_MS: '4000',
          // Phase 1 opens the peer's refusal breaker; replay starts once a probe is accepted.
          PUSH_REFUSAL_BREAKER_PROBE_MS: '1000',
        },
      });
      const a = cluster.node('a');
      await a.spawn('api');
      await a.spawn('worker', { WORKER_QUEUES: 'push,catchup,audit' });
      const checker = new SetChecker('dlq-twin-replayers', [a.view(), { kind: 'receiver', id: 'up', receiver }]);
      checker.startSampling();

      // Phase 1: everything refused as a whole batch -> split down to single rows (then,
      // the refusal breaker open, dead-lettered whole) -> DLQ.
      receiver.failWith = { status: 422 };
      await checker.burst([a], OPS, { concurrency: 8 });
      const rows = checker.ids().length;
      await waitFor(
        async () => (await a.db.database.sql`SELECT count(*)::int AS n FROM federation_push_dlq WHERE peer_id = 'up' AND status = 'pending'`)[0]!.n === rows,
        { timeoutMs: 90_000, intervalMs: 250, what: `${rows} pending DLQ rows` },
      );
      expect(receiver.deliveries.size).toBe(0);

      // Phase 2: the receiver accepts; two replayers race over the backlog on a slow link.
      receiver.failWith = null;
      proxy.resetStats();
      proxy.setMode({ kind: 'delay', ms: 60 });
      checker.markHealed();
      await Promise.all([a.spawn('worker', { WORKER_QUEUES: 'dlq' }, { name: 'dlq-1' }), a.spawn('worker', { WORKER_QUEUES: 'dlq' }, { name: 'dlq-2' })]);
      const report = await checker.verify({ deadlineMs: 120_000 });
      // The receiver applies a batch before its (delayed) answer reaches the replayer: let
      // the DLQ settle before reading it, then look at the deliveries again.
      const dlqStatus = () => a.db.database.sql`SELECT status, count(*)::int AS n FROM federation_push_dlq WHERE peer_id = 'up' GROUP BY status ORDER BY status`;
      await waitFor(async () => {
        const rows = await dlqStatus();
        return rows.length === 1 && rows[0]!.status === 'replayed';
      }, { timeoutMs: 30_000, intervalMs: 100, what: 'every DLQ row replayed' }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1000));
      const dlq = await dlqStatus();
      const overlapping = proxy.stats.maxInFlight;
      console.log(summarize(report, { rows, replayRequests: proxy.stats.byRoute[PUSH] ?? 0, maxConcurrentReplays: overlapping, dlq }));
      const found = problems(report, { acked: 150, samples: 10 });
      if (found.length) console.log(cluster.logs());
      expect(found).toEqual([]);
      // Every row replayed, each delivered exactly once, and the replayers did overlap.
      expect(dlq).toEqual([{ status: 'replayed', n: rows }]);
      // Live ids arrive as documents, deleted ones as deletions (counted apart).
      expect(receiver.deliveries.size + receiver.deleted.size).toBe(rows);
      expect([...receiver.deliveries.values()].every((n) => n === 1)).toBe(true);
      expect(overlapping).toBeGreaterThanOrEqual(2);
    } finally {
      await cluster?.destroy();
      await proxy.close();
      await receiver.stop();
    }
  });
});
