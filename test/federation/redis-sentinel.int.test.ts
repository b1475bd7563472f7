import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { failoverRun } from '../helpers/failover-run.js';
import { api } from '../helpers/node.js';
import { redisToolsMissing } from '../helpers/private-cluster.js';
import { PrivateSentinel } from '../helpers/private-sentinel.js';
import { startProcessMesh } from '../helpers/process-mesh.js';
import { skipNote } from '../helpers/skip.js';
import { uniquePrefix } from '../helpers/redis.js';

/*
 * memfed behind Redis Sentinel of the test's own (primary, replica, three sentinels on
 * free ports): REDIS_SENTINELS + REDIS_SENTINEL_NAME replace REDIS_URL, and every
 * connection finds the primary through the sentinels, again after a failover.
 */
const missing = redisToolsMissing();

describe.skipIf(missing !== null)(`memfed behind Redis Sentinel${skipNote(missing !== null, missing ?? '')}`, () => {
  let topology: PrivateSentinel;
  beforeAll(async () => {
    topology = await new PrivateSentinel().start();
  }, 60_000);
  afterAll(async () => {
    await topology?.stop();
  });

  it('a three-node mesh through the sentinels accepts writes with a quorum and converges', async () => {
    const prefixes = new Map<string, string>();
    const mesh = await startProcessMesh(3, { REDIS_SENTINELS: topology.addresses, REDIS_SENTINEL_NAME: topology.name, FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '15000' }, { queuePrefix: (id) => prefixes.set(id, uniquePrefix()).get(id)! });
    try {
      const ids: string[] = [];
      for (const n of mesh.nodes) {
        const r = await api(n.url, 'POST', '/api/v1/memories', { title: `from ${n.id}`, content: 'behind sentinel' });
        expect(r.status).toBe(201);
        expect(r.json.quorum_acks).toBeGreaterThanOrEqual(2);
        ids.push(r.json.id);
      }
      for (const n of mesh.nodes) for (const id of ids) await waitFor(async () => (await api(n.url, 'GET', `/api/v1/memories/${id}`)).status === 200, { timeoutMs: 40_000, what: `${id} on ${n.id}` });
      // The queues are on the primary the sentinels name.
      const port = await topology.primaryPort();
      expect(port).toBe(topology.primary.port);
      expect(await topology.primary.query((r) => r.exists(`${prefixes.get('proc-a')}:push:meta`))).toBe(1);
    } finally {
      await mesh.destroy();
    }
  }, 90_000);

  it('the primary killed during a write burst: the replica takes over, processes reconnect by themselves, nothing acknowledged is lost or applied twice', async () => {
    const run = await failoverRun({
      name: 'sentinel-primary-killed',
      env: { REDIS_SENTINELS: topology.addresses, REDIS_SENTINEL_NAME: topology.name },
      fail: () => topology.failover(),
    });
    if (run.found.length) console.log(run.logs);
    expect(run.found).toEqual([]);
    expect(run.report.outcomes.acked).toBeGreaterThanOrEqual(30);
  }, 150_000);
});
