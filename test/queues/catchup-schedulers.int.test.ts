import { afterAll, describe, expect, it } from 'vitest';
import { catchupSchedulerId, pruneCatchupSchedulers, syncCatchupSchedulers } from '../../queues/catchup.js';
import { createRedis } from '../../queues/connection.js';
import { closeQueues, createQueues } from '../../queues/registry.js';
import { REDIS_URL } from '../helpers/env.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';

// Catch-up schedulers follow the peer list: the periodic check removes those of peers no
// longer active, whichever process (or stale view) created them, and keeps the others.

const prefix = uniquePrefix();
const redis = createRedis(REDIS_URL, 'producer', 'catchup-schedulers-test');
const queues = createQueues(redis, prefix);

afterAll(async () => {
  await closeQueues(queues);
  await redis.quit();
  await dropPrefix(prefix);
});

describe('catch-up schedulers', () => {
  it('pruning keeps the active peers and removes every other catch-up scheduler', async () => {
    await syncCatchupSchedulers(queues.catchup, ['p-active', 'p-paused', 'p-removed'], 60_000, false);
    const removed = await pruneCatchupSchedulers(queues.catchup, ['p-active']);
    expect(removed.sort()).toEqual([catchupSchedulerId('p-paused'), catchupSchedulerId('p-removed')].sort());
    expect((await queues.catchup.getJobSchedulers(0, -1)).map((s) => s.key)).toEqual([catchupSchedulerId('p-active')]);
    expect(await pruneCatchupSchedulers(queues.catchup, ['p-active'])).toEqual([]);
  });
});
