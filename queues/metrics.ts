import type { Metrics } from '../src/metrics.js';
import { QUEUE_NAMES } from '../src/queue-names.js';
import { nextWaitingJob } from './definition.js';
import type { Queues } from './registry.js';

const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'] as const;

/**
 * Per queue and state job counts, the oldest waiting job's age and the live workers, read
 * at scrape time. The worker count comes from Redis (the named connections of every
 * worker on this queue prefix), so the API process reports 0 when the worker process is
 * dead: that is what the worker-down alert needs.
 */
export function registerQueueCollectors(metrics: Metrics, queues: Queues): void {
  metrics.onScrape(async () => {
    await Promise.all(
      QUEUE_NAMES.map(async (name) => {
        const q = queues[name];
        const counts = await q.getJobCounts(...STATES);
        for (const state of STATES) metrics.queueJobs.set({ queue: name, state }, counts[state] ?? 0);
        const oldest = await nextWaitingJob(q);
        metrics.queueOldestWaitingAge.set({ queue: name }, oldest ? Math.max(0, (Date.now() - oldest.timestamp) / 1000) : 0);
        metrics.queueWorkers.set({ queue: name }, await q.getWorkersCount());
      }),
    );
  });
}
