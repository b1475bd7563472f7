import { describe, expect, it } from 'vitest';
import { ChaosCluster } from '../helpers/chaos-cluster.js';
import { SetChecker, problems, summarize } from '../helpers/checker.js';
import { waitFor } from '../helpers/env.js';

/*
 * (g) The API dies between the commit and the enqueue of its push jobs
 * (MEMFED_FAULT_CRASH_AFTER_COMMIT=true: SIGKILL of itself right after the commit).
 * The write is in a's Postgres but no push job was ever enqueued and the client got no
 * answer. b's catch-up tick is far away (10 min), so only a's reconciler, which derives
 * pending deliveries from the cursors in Postgres, can deliver it.
 */
const CRASHES = 3;

describe('(g) API killed between commit and enqueue', () => {
  it('the committed write is delivered by the reconciler; the restarted API (no flag) serves normally', async () => {
    const cluster = await ChaosCluster.create({
      nodes: [{ id: 'a', split: true, autostart: false }, 'b'],
      mode: 'process',
      proxied: false,
      env: { FED_QUORUM_W: '1', CATCHUP_INTERVAL_MS: '600000' },
    });
    try {
      const a = cluster.node('a');
      const b = cluster.node('b');
      await a.spawn('worker');
      const checker = new SetChecker('crash-after-commit', cluster.views());
      checker.startSampling();
      const crashed: string[] = [];
      for (let i = 0; i < CRASHES; i++) {
        const api = await a.spawn('api', { MEMFED_FAULT_CRASH_AFTER_COMMIT: 'true' });
        const w = await checker.write(a, { timeoutMs: 10_000 });
        // No answer: the process killed itself after the commit.
        expect(w.outcome).toBe('unknown');
        expect(await api.proc.exited).toBe('SIGKILL');
        const rows = await a.db.database.sql`SELECT id FROM memories WHERE id = ${w.id}`;
        expect(rows).toHaveLength(1);
        checker.markCommitted(w.id);
        crashed.push(w.id);
      }
      checker.markFault();
      // With no API running at all, a's worker (its reconciler) delivers the orphaned commits.
      const t0 = Date.now();
      await waitFor(async () => (await b.db.database.sql`SELECT count(*)::int AS n FROM memories WHERE id = ANY(${b.db.database.sql.array(crashed)}::text[])`)[0]!.n === CRASHES, {
        timeoutMs: 30_000,
        what: 'b holds the writes whose API crashed before enqueueing',
      });
      const reconcilerDeliveryMs = Date.now() - t0;
      await a.spawn('api');
      checker.markHealed();
      // The restarted API serves and replicates normally.
      const after = await checker.burst([a, b], 20, { concurrency: 2 });
      // Creates, updates and deletes acknowledged; bulk creates committed (no quorum wait); re-creates refused by the tombstone.
      expect(after.filter((w) => w.outcome !== (w.op === 'bulk' ? 'committed' : w.op === 'recreate' ? 'conflict' : 'acked'))).toEqual([]);
      const report = await checker.verify({ deadlineMs: 60_000 });
      console.log(summarize(report, { crashed: crashed.length, reconcilerDeliveryMs }));
      const found = problems(report, { acked: 10, samples: 5 });
      if (found.length) console.log(cluster.logs());
      expect(crashed.map((id) => checker.history(id)[0]!.outcome)).toEqual(crashed.map(() => 'committed'));
      expect(found).toEqual([]);
    } finally {
      await cluster.destroy();
    }
  });
});
