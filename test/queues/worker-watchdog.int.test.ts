import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics.js';
import { createRedis } from '../../queues/connection.js';
import { defineQueue } from '../../queues/definition.js';
import { defineWorker, type Processor } from '../../queues/worker.js';
import { SupervisedWorker } from '../../queues/worker-watchdog.js';
import { untilAborted } from '../helpers/abort.js';
import { REDIS_URL, waitFor } from '../helpers/env.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';
import { capturingLogger } from '../helpers/worker-context.js';

// A worker whose fetch loop is parked (here: paused locally, as a loop stuck on a blocking
// read after a failover looks from outside) while a job waits is replaced by the watchdog.
const testQueue = defineQueue<{ n: number }>()({ name: 'push', jobOptions: { attempts: 1 }, concurrency: () => 1 });
const timing = { checkMs: 100, stallMs: 400 };

describe('the worker watchdog', () => {
  const open: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close();
  });

  function start(processor: Processor<unknown>, opts: { concurrency?: number } = {}) {
    const prefix = uniquePrefix();
    const producer = createRedis(REDIS_URL, 'producer', 'watchdog-test-q');
    const queue = new Queue(testQueue.name, { connection: producer, prefix });
    const metrics = createMetrics({ nodeId: 'watchdog', role: 'worker', defaultMetrics: false });
    const log = capturingLogger();
    const concurrency = opts.concurrency ?? 1;
    const created: string[] = [];
    const supervised = new SupervisedWorker({
      queueName: 'push',
      queue,
      concurrency,
      processor,
      logger: log.logger,
      metrics,
      timing,
      create: (p) => {
        const connection = createRedis(REDIS_URL, 'worker', 'watchdog-test');
        const worker = defineWorker(testQueue, p as never, { connection, prefix, lockMs: 5000, logger: log.logger, metrics, concurrency });
        created.push(worker.id);
        return { worker, connection };
      },
    });
    open.push(async () => {
      supervised.stop();
      await supervised.worker.close(true);
      await queue.close();
      await Promise.all([supervised.connection.quit(), producer.quit()]);
      await dropPrefix(prefix);
    });
    const replacements = async () => (await metrics.workerReplacements.get()).values.find((v) => v.labels.queue === 'push')?.value ?? 0;
    return { queue, supervised, created, replacements, log };
  }

  it('replaces a worker that stops taking jobs while one waits, and the job then runs', async () => {
    const ran: number[] = [];
    const { queue, supervised, created, replacements, log } = start(async (job) => void ran.push((job.data as { n: number }).n));
    await supervised.worker.waitUntilReady();
    await supervised.worker.pause();
    await queue.add('stuck', { n: 1 });
    await waitFor(async () => ran.includes(1), { timeoutMs: 10_000, what: 'the waiting job ran on the replacement' });
    expect(created).toHaveLength(2);
    expect(await replacements()).toBe(1);
    expect(log.lines().some((l) => String(l.msg).startsWith('worker stopped taking jobs'))).toBe(true);
  });

  it('watches the job due next, so newer jobs arriving all the time do not hide a parked worker', async () => {
    const ran: number[] = [];
    const { queue, supervised, created } = start(async (job) => void ran.push((job.data as { n: number }).n));
    await supervised.worker.waitUntilReady();
    await supervised.worker.pause();
    await queue.add('first', { n: 0 });
    // A new job at every check: the newest waiting job never stays the same for long.
    let n = 1;
    const arrivals = setInterval(() => void queue.add('newer', { n: n++ }), timing.checkMs);
    try {
      await waitFor(async () => ran.includes(0), { timeoutMs: 10_000, what: 'the first job ran on the replacement' });
    } finally {
      clearInterval(arrivals);
    }
    expect(created).toHaveLength(2);
  });

  it('leaves alone a worker busy on all its slots, and a queue an operator paused', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const { queue, supervised, created, replacements } = start(async () => held);
    await supervised.worker.waitUntilReady();
    await queue.add('long', { n: 1 });
    await waitFor(async () => (await queue.getActiveCount()) === 1, { what: 'the long job active' });
    await queue.add('behind', { n: 2 });
    await new Promise((r) => setTimeout(r, timing.stallMs * 3));
    expect(await supervised.check()).toBe(false);
    release();
    await waitFor(async () => (await queue.getCompletedCount()) === 2, { what: 'both jobs done' });

    await queue.pause();
    await queue.add('held by the operator', { n: 3 });
    await new Promise((r) => setTimeout(r, timing.stallMs * 3));
    expect(await supervised.check()).toBe(false);
    expect(created).toHaveLength(1);
    expect(await replacements()).toBe(0);
  });

  it('tells the runs of the worker it replaces to stop, so they do not go on beside the re-run', async () => {
    let stopped: unknown;
    const { queue, supervised, created } = start(
      async (job, _token, signal) => {
        if ((job.data as { n: number }).n !== 1) return;
        stopped = await untilAborted(signal);
      },
      { concurrency: 2 },
    );
    await supervised.worker.waitUntilReady();
    await queue.add('long', { n: 1 });
    await waitFor(async () => (await queue.getActiveCount()) === 1, { what: 'the long job active' });
    // Parked with a free slot while a job waits: replaced.
    await supervised.worker.pause(true);
    // The fetch already waiting for a job when the worker paused takes one more.
    await queue.add('taken by the fetch in flight', { n: 2 });
    await waitFor(async () => (await queue.getCompletedCount()) === 1, { what: 'the job the pending fetch took' });
    await queue.add('waiting', { n: 3 });
    await waitFor(async () => stopped !== undefined || null, { timeoutMs: 10_000, what: 'the long run told to stop' });
    expect(stopped).toBe('worker replaced by the watchdog');
    expect(created).toHaveLength(2);
  });
});
