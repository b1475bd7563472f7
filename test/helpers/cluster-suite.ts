import { afterAll, beforeAll } from 'vitest';
import { PrivateCluster, redisToolsMissing } from './private-cluster.js';

/** The hash-tagged QUEUE_PREFIX a cluster test gives node `id` (each queue then gets its own tag). */
export const clusterTag = (id: string) => `{mf-${id}}`;

/**
 * A private Redis Cluster for one test file: started before its tests unless the Redis
 * tools are missing (`missing` says why, for describe.skipIf), stopped after them.
 */
export function usePrivateCluster(): { missing: string | null; topology: () => PrivateCluster } {
  const missing = redisToolsMissing();
  let topology: PrivateCluster | undefined;
  beforeAll(async () => {
    if (!missing) topology = await new PrivateCluster().start();
  }, 60_000);
  afterAll(async () => {
    await topology?.stop();
  });
  return { missing, topology: () => topology! };
}
