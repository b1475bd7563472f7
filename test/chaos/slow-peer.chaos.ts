import { describe, expect, it } from 'vitest';
import { ChaosCluster } from '../helpers/chaos-cluster.js';
import { SetChecker, problems, summarize } from '../helpers/checker.js';
import { sumStats } from './scenarios.js';

describe('(c) one slow peer', () => {
  it('does not delay delivery to the other peer', async () => {
    // W=1: the client never waits for anyone, so only the fan-out decides who gets what when.
    const cluster = await ChaosCluster.create({ nodes: ['a', 'b', 'c'], env: { FED_QUORUM_W: '1', FED_REQUEST_TIMEOUT_MS: '5000', CATCHUP_INTERVAL_MS: '2000' } });
    try {
      const checker = new SetChecker('slow-peer', cluster.views());
      checker.startSampling();
      // c is on a slow network: every chunk to or from it waits 600 ms.
      const slow = cluster.linksOf('c');
      cluster.setMode(slow, { kind: 'delay', ms: 600, jitterMs: 100 });
      checker.markFault();
      await checker.burst([cluster.node('a')], 60, { concurrency: 4 });
      // Measured from the end of the burst, with the slow links still slow.
      const report = await checker.verify({ deadlineMs: 60_000, intervalMs: 100 });
      const stats = sumStats(slow.map((p) => p.stats));
      const b = report.nodes.find((n) => n.node === 'b')!;
      const c = report.nodes.find((n) => n.node === 'c')!;
      console.log(summarize(report, { fastPeerHeldMs: b.heldMs, slowPeerHeldMs: c.heldMs, delayedChunks: stats.delayedChunks }));
      expect(stats.delayedChunks).toBeGreaterThan(0);
      expect(problems(report, { acked: 30, samples: 5 })).toEqual([]);
      expect(b.heldMs).not.toBeNull();
      expect(c.heldMs).not.toBeNull();
      // Relative ordering only: the fast peer had everything before the slow one did.
      expect(b.heldMs!).toBeLessThan(c.heldMs!);
    } finally {
      await cluster.destroy();
    }
  });
});
