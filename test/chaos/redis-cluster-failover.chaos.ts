import { describe, expect, it } from 'vitest';
import { queuePrefixFor } from '../../queues/definition.js';
import { failoverRun } from '../helpers/failover-run.js';
import { clusterTag, usePrivateCluster } from '../helpers/cluster-suite.js';
import { skipNote } from '../helpers/skip.js';

/*
 * A Redis Cluster primary killed under a three-node mesh's write burst (3 primaries and 3
 * replicas of the test's own, free ports). Kept in the fault campaign (`npm run
 * test:chaos`), not in CI: alone it passes (converged in 7-8 s in every local run), but
 * in three of five full CI runs one node's pushes to both peers had not resumed by the
 * run's deadline (45 s, then 90 s) (docs/testing.md, "Known open failure").
 */
const cluster = usePrivateCluster();
const { missing } = cluster;

describe.skipIf(missing !== null)(`memfed on a Redis Cluster, primary killed${skipNote(missing !== null, missing ?? '')}`, () => {
  it('a cluster primary killed during a write burst loses no acknowledged write, applies none twice, and delivery resumes', async () => {
    const run = await failoverRun({
      name: 'cluster-primary-killed',
      env: { REDIS_CLUSTER_NODES: cluster.topology().seeds },
      nodeEnv: (id) => ({ QUEUE_PREFIX: clusterTag(id) }),
      fail: async () => {
        // The shard that holds node a's push queue: its deliveries stop until a replica takes over.
        const victim = await cluster.topology().primaryOf(queuePrefixFor(clusterTag('a'), 'push'));
        await victim.kill();
        await cluster.topology().waitHealthy();
      },
    });
    if (run.found.length) console.log(run.logs);
    expect(run.found).toEqual([]);
    expect(run.report.outcomes.acked).toBeGreaterThanOrEqual(30);
  }, 150_000);
});
