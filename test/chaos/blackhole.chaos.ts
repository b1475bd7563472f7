import { describe, expect, it } from 'vitest';
import { ChaosCluster } from '../helpers/chaos-cluster.js';
import { SetChecker, problems, summarize } from '../helpers/checker.js';
import { sumStats } from './scenarios.js';

const BLACKHOLE_MS = 8000;

describe('(d) blackholed peer', () => {
  it('a node whose every link swallows traffic for 8 s gets every write, and its own 503-committed writes reach the others', async () => {
    const cluster = await ChaosCluster.create({ nodes: ['a', 'b', 'c'], env: { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '1000', FED_REQUEST_TIMEOUT_MS: '1500' } });
    try {
      const checker = new SetChecker('blackhole', cluster.views());
      checker.startSampling();
      const links = cluster.linksOf('c');
      cluster.setMode(links, { kind: 'blackhole' });
      checker.markFault();
      const until = Date.now() + BLACKHOLE_MS;
      // a and b keep a quorum between them; c can only commit locally (503).
      const ab = checker.burst([cluster.node('a'), cluster.node('b')], 400, { concurrency: 2, spacingMs: 100, maxMs: BLACKHOLE_MS - 500 });
      const cw = checker.burst([cluster.node('c')], 5, { concurrency: 1, spacingMs: 300, maxMs: BLACKHOLE_MS - 2000 });
      await Promise.all([ab, cw]);
      await new Promise((r) => setTimeout(r, Math.max(0, until - Date.now())));
      cluster.setMode(links, { kind: 'pass' });
      checker.markHealed();
      const report = await checker.verify({ deadlineMs: 90_000 });
      const stats = sumStats(links.map((p) => p.stats));
      console.log(summarize(report, { blackholeMs: BLACKHOLE_MS, blackholed: stats.blackholed }));
      expect(stats.blackholed).toBeGreaterThan(0);
      // c's writes could not reach a quorum while it was cut off.
      expect([...checker.writes.values()].filter((w) => w.node === 'c').every((w) => w.outcome === 'committed')).toBe(true);
      expect(problems(report, { acked: 20, samples: 10 })).toEqual([]);
    } finally {
      await cluster.destroy();
    }
  });
});
