import { describe, expect, it } from 'vitest';
import { ChaosCluster } from '../helpers/chaos-cluster.js';
import { SetChecker, problems, summarize } from '../helpers/checker.js';

/*
 * Without any fault, every acknowledged version reaches the peer by push alone: creates,
 * several updates per id, deletes, bulk creates. Catch-up is pushed far away (10 min) so
 * it cannot repair what a push lost; the history checker compares every document field
 * for field and samples the delivery cursors (a cursor passing a version the peer does
 * not hold is reported even if a later write would hide it).
 */
describe('push replication of a mixed history', () => {
  it('every acknowledged update and delete reaches the peer, field for field, by push alone', async () => {
    const cluster = await ChaosCluster.create({ nodes: ['a', 'b'], proxied: false, env: { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '8000', CATCHUP_INTERVAL_MS: '600000' } });
    try {
      const checker = new SetChecker('push-history', cluster.views());
      checker.startSampling(100);
      // Mostly updates: about three versions per id, then a delete for some.
      await checker.burst(cluster.nodes, 90, { concurrency: 3, mix: ['create', 'update', 'update', 'bulk', 'update', 'update', 'delete', 'update', 'update'] });
      const report = await checker.verify({ deadlineMs: 20_000 });
      console.log(summarize(report));
      // Updates and deletes really happened (committed without a quorum counts: the peer still gets them).
      expect(report.byOp.update.acked + report.byOp.update.committed).toBeGreaterThanOrEqual(30);
      expect(report.byOp.delete.acked + report.byOp.delete.committed).toBeGreaterThan(0);
      expect(problems(report, { acked: 25, samples: 3 })).toEqual([]);
    } finally {
      await cluster.destroy();
    }
  });
});
