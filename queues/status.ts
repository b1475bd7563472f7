import type { RedisTarget } from '../src/config.js';
import type { QueueStatus, QueueStatusSource } from '../src/status/report.js';
import { QUEUE_NAMES } from '../src/queue-names.js';
import { createRedis } from './connection.js';
import { closeQueues, createQueues, type Queues } from './registry.js';

/**
 * Every queue's job counts and live worker count for the status report. Workers are the
 * Redis connections BullMQ names after the queue (CLIENT LIST), so workers of every
 * process on this prefix count, not only this one's.
 */
export function queueStatusSource(queues: Queues): QueueStatusSource {
  return () =>
    Promise.all(
      QUEUE_NAMES.map(async (name): Promise<QueueStatus> => {
        const q = queues[name];
        const [counts, workers] = await Promise.all([q.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed'), q.getWorkersCount()]);
        // Prioritized jobs are waiting too, in another list.
        return { name, waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0), active: counts.active ?? 0, delayed: counts.delayed ?? 0, failed: counts.failed ?? 0, workers };
      }),
    );
}

/** The status report's queue access for a tool process: its own fail-fast connection. */
export function openQueueStatus(target: RedisTarget | string, prefix: string): { source: QueueStatusSource; close(): Promise<void> } {
  const redis = createRedis(target, 'producer', 'status');
  const queues = createQueues(redis, prefix);
  // Failures surface through the reads (BullMQ would print each reconnect attempt).
  for (const q of Object.values(queues)) q.on('error', () => {});
  return {
    source: queueStatusSource(queues),
    async close() {
      // A connection that never came up has nothing to flush, and closing its queues
      // would wait for it.
      if (redis.status !== 'ready') return void redis.disconnect();
      await closeQueues(queues);
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
