import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queuePrefixFor } from '../../queues/definition.js';
import { failoverRun } from '../helpers/failover-run.js';
import { PrivateCluster, redisToolsMissing } from '../helpers/private-cluster.js';
import { skipNote } from '../helpers/skip.js';

/*
 * A Redis Cluster primary killed under a three-node mesh's write burst (3 primaries and 3
 * replicas of the test's own, free ports). Kept in the fault campaign (`npm run
 * test:chaos`), not in CI: alone it passes (converged in 7-8 s in every local run), but
 * in three of five full CI runs one node's pushes to both peers had not resumed by the
 * run's deadline (45 s, then 90 s) (docs/testing.md, "Known open failure").
 */
const missing = redisToolsMissing();
const TAG = (id: string) => `{mf-${id}}`;
let topology: PrivateCluster;

beforeAll(async () => {
  if (!missing) topology = await new PrivateCluster().start();
}, 60_000);
afterAll(async () => {
  await topology?.stop();
});

describe.skipIf(missing !== null)(`memfed on a Redis Cluster, primary killed${skipNote(missing !== null, missing ?? '')}`, () => {
  it('a cluster primary killed during a write burst loses no acknowledged write, applies none twice, and delivery resumes', async () => {
    const run = await failoverRun({
      name: 'cluster-primary-killed',
      env: { REDIS_CLUSTER_NODES: topology.seeds },
      nodeEnv: (id) => ({ QUEUE_PREFIX: TAG(id) }),
      fail: async () => {
        // The shard that holds node a's push queue: its deliveries stop until a replica takes over.
        const victim = await topology.primaryOf(queuePrefixFor(TAG('a'), 'push'));
        await victim.kill();
        await topology.waitHealthy();
      },
    });
    if (run.found.length) console.log(run.logs);
    expect(run.found).toEqual([]);
    expect(run.report.outcomes.acked).toBeGreaterThanOrEqual(30);
  }, 150_000);
});
