import { Cluster, Redis } from 'ioredis';
import { REDIS_TOPOLOGY_ENV, REDIS_URL, uniqueSuffix } from './env.js';

const hostPorts = (list: string) => list.split(',').map((e) => ({ host: e.slice(0, e.lastIndexOf(':')), port: Number(e.slice(e.lastIndexOf(':') + 1)) }));

/** A BullMQ prefix no other test uses (hash-tagged when the helpers run on a cluster). */
export const uniquePrefix = () => (REDIS_TOPOLOGY_ENV.REDIS_CLUSTER_NODES ? `{mft_${uniqueSuffix()}}` : `mft_${uniqueSuffix()}`);

async function dropOn(r: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    // One key a command: on a cluster node, keys of several slots cannot go in one DEL.
    await Promise.all(keys.map((k) => r.del(k)));
  } while (cursor !== '0');
}

/** Deletes every key under a prefix (the per-test equivalent of obliterate for all queues). */
export async function dropPrefix(prefix: string): Promise<void> {
  // A tagged prefix's queues live under `{tag:<queue>}`: match from the opening brace on.
  const pattern = prefix.endsWith('}') ? `${prefix.slice(0, -1)}*` : `${prefix}:*`;
  if (REDIS_TOPOLOGY_ENV.REDIS_CLUSTER_NODES) {
    const c = new Cluster(hostPorts(REDIS_TOPOLOGY_ENV.REDIS_CLUSTER_NODES), { redisOptions: { maxRetriesPerRequest: 1 } });
    try {
      await new Promise<void>((resolve, reject) => {
        c.once('ready', resolve);
        c.once('error', reject);
      });
      await Promise.all(c.nodes('master').map((n) => dropOn(n, pattern)));
    } finally {
      c.disconnect();
    }
    return;
  }
  const r = REDIS_TOPOLOGY_ENV.REDIS_SENTINELS
    ? new Redis({ sentinels: hostPorts(REDIS_TOPOLOGY_ENV.REDIS_SENTINELS), name: REDIS_TOPOLOGY_ENV.REDIS_SENTINEL_NAME!, maxRetriesPerRequest: 1 })
    : new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    await dropOn(r, pattern);
  } finally {
    r.disconnect();
  }
}
