import { Queue, UnrecoverableError, type Worker } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerRequestError } from '../../src/federation/client.js';
import { createMetrics } from '../../src/metrics.js';
import { createRedis } from '../../queues/connection.js';
import { defineQueue } from '../../queues/definition.js';
import { defineWorker } from '../../queues/worker.js';
import { untilAborted } from '../helpers/abort.js';
import { REDIS_URL, waitFor } from '../helpers/env.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';
import { capturingLogger } from '../helpers/worker-context.js';

// A definition like the real ones, on the push queue's name (its own prefix keeps it apart).
const testQueue = defineQueue<{ failTimes: number; unrecoverable?: boolean }>()({
  name: 'push',
  jobOptions: { attempts: 3, backoff: { type: 'peer' } },
  concurrency: () => 1,
  afterFinalFailure: 'nothing is lost (test)',
});

const counter = async (metrics: ReturnType<typeof createMetrics>, outcome: string) =>
  (await metrics.jobOutcomes.get()).values.find((v) => v.labels.outcome === outcome && v.labels.queue === 'push')?.value ?? 0;

describe('the queue factory (defineWorker)', () => {
  const open: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close();
  });

  async function start(processor: (job: { id?: string; data: { failTimes: number; unrecoverable?: boolean }; attemptsMade: number }, token?: string, signal?: AbortSignal) => Promise<unknown>) {
    const prefix = uniquePrefix();
    const connection = createRedis(REDIS_URL, 'worker', 'factory-test');
    const producer = createRedis(REDIS_URL, 'producer', 'factory-test-q');
    const queue = new Queue(testQueue.name, { connection: producer, prefix, defaultJobOptions: testQueue.jobOptions });
    const metrics = createMetrics({ nodeId: 'factory', role: 'worker', defaultMetrics: false });
    const log = capturingLogger();
    const worker: Worker = defineWorker(testQueue, processor as never, { connection, prefix, lockMs: 5000, logger: log.logger, metrics, concurrency: 1 });
    open.push(async () => {
      await worker.close();
      await queue.close();
      await Promise.all([connection.quit(), producer.quit()]);
      await dropPrefix(prefix);
    });
    return { queue, metrics, log, prefix, producer };
  }

  it('retries with the shared backoff, counts each outcome, and logs retries at debug', async () => {
    const { queue, metrics, log } = await start(async (job) => {
      if (job.attemptsMade < job.data.failTimes) throw new Error(`attempt ${job.attemptsMade + 1} fails`);
      return 'ok';
    });
    const job = await queue.add('t', { failTimes: 2 });
    await waitFor(async () => (await job.isCompleted()) || null, { timeoutMs: 20_000, what: 'the job to complete after two retries' });
    expect(await counter(metrics, 'retried')).toBe(2);
    expect(await counter(metrics, 'completed')).toBe(1);
    expect(await counter(metrics, 'failed')).toBe(0);
    const retries = log.lines().filter((l) => l.msg === 'job attempt failed; will retry');
    expect(retries.map((l) => l.level)).toEqual([20, 20]);
  });

  it('logs a final failure once, at error, with the error object and its stack', async () => {
    const { queue, metrics, log } = await start(async () => {
      throw new Error('always broken');
    });
    const job = await queue.add('t', { failTimes: 99 });
    await waitFor(async () => (await job.isFailed()) && (await queue.getJob(job.id!))!.attemptsMade === 3, { timeoutMs: 30_000, what: 'three failed attempts' });
    await waitFor(async () => (await counter(metrics, 'failed')) === 1 || null, { what: 'the final failure counted' });
    expect(await counter(metrics, 'retried')).toBe(2);
    const finals = log.lines().filter((l) => l.msg === 'job failed after its last attempt');
    expect(finals).toHaveLength(1);
    expect(finals[0]).toMatchObject({ level: 50, queue: 'push', next: 'nothing is lost (test)', err: { message: 'always broken' } });
    expect(finals[0]!.err.stack).toMatch(/always broken\n\s+at /);
    // The job log: one line per attempt, numbered, with what came next; the stacks stay.
    const { logs } = await queue.getJobLogs(job.id!);
    expect(logs).toEqual([
      expect.stringMatching(/^attempt 1\/3 failed: \[unexpected\] Error: always broken \(stack in the Error tab\) \| next try in \d\.\d s \(at \d\d:\d\d:\d\d UTC\) \| after attempt 3\/3: nothing is lost \(test\)$/),
      expect.stringMatching(/^attempt 2\/3 failed: .* \| next try in /),
      'attempt 3/3 failed: [unexpected] Error: always broken (stack in the Error tab) | that was the last attempt: nothing is lost (test)',
    ]);
    const failed = (await queue.getJob(job.id!))!;
    expect(failed.stacktrace).toHaveLength(3);
    for (const trace of failed.stacktrace ?? []) expect(trace).toMatch(/always broken\n\s+at /);
  });

  it('keeps an expected peer failure to one line without a stack, and logs a completed attempt', async () => {
    const { queue } = await start(async (job) => {
      if (job.attemptsMade < 1) throw new PeerRequestError('transient', 'POST /api/v1/sync/push to b: HTTP 502 bad\ngateway', 502);
      return 'ok';
    });
    const job = await queue.add('t', { failTimes: 1 });
    // In backoff: the delay BullMQ applied is the one the log line announced (to the 0.1 s shown).
    const delayed = await waitFor(async () => ((await job.isDelayed()) ? queue.getJob(job.id!) : null), { intervalMs: 10, what: 'the job in backoff' });
    const announced = Number((await queue.getJobLogs(job.id!)).logs[0]!.match(/next try in (\d\.\d) s/)![1]) * 1000;
    expect(Math.abs(delayed!.delay - announced)).toBeLessThanOrEqual(50);
    await waitFor(async () => (await job.isCompleted()) || null, { timeoutMs: 20_000, what: 'the job to complete after one retry' });
    const done = (await queue.getJob(job.id!))!;
    expect(done.stacktrace).toEqual(['[transient] POST /api/v1/sync/push to b: HTTP 502 bad gateway']);
    const { logs } = await queue.getJobLogs(job.id!);
    expect(logs).toEqual([expect.stringMatching(/^attempt 1\/3 failed: \[transient\] POST \/api\/v1\/sync\/push to b: HTTP 502 bad gateway \| next try in /), expect.stringMatching(/^attempt 2\/3 completed in \d/)]);
  });

  it('treats an unrecoverable error as the final attempt at once', async () => {
    const { queue, metrics, log } = await start(async () => {
      throw new UnrecoverableError('refused for good');
    });
    const job = await queue.add('t', { failTimes: 99 });
    await waitFor(async () => (await job.isFailed()) || null, { what: 'the job to fail' });
    await waitFor(async () => (await counter(metrics, 'failed')) === 1 || null, { what: 'the final failure counted' });
    expect((await queue.getJob(job.id!))!.attemptsMade).toBe(1);
    expect(await counter(metrics, 'retried')).toBe(0);
    expect(log.lines().filter((l) => l.msg === 'job failed after its last attempt')).toHaveLength(1);
  });

  it('tells a run whose lock was lost to stop (its abort signal), counts the lost lock once and logs it', async () => {
    let started: string | undefined;
    let stopped: unknown;
    const { queue, metrics, log, prefix, producer } = await start(async (job, _token, signal) => {
      started = job.id;
      stopped = await untilAborted(signal);
      // A run that does not stop at once: BullMQ's renewals of its lock keep failing meanwhile.
      await new Promise((r) => setTimeout(r, 6_000));
    });
    const job = await queue.add('t', { failTimes: 0 });
    await waitFor(async () => started === job.id || null, { what: 'the job running' });
    // As when another worker's stalled check took the job over: the lock is no longer this worker's.
    await producer.del(`${prefix}:${testQueue.name}:${job.id}:lock`);
    await waitFor(async () => stopped !== undefined || null, { timeoutMs: 10_000, what: 'the run told to stop at the next lock renewal' });
    expect(stopped).toBe('job lock lost');
    await new Promise((r) => setTimeout(r, 6_000));
    expect((await metrics.jobLocksLost.get()).values.find((v) => v.labels.queue === 'push')?.value).toBe(1);
    expect(log.lines().filter((l) => String(l.msg).startsWith('job lock lost'))).toHaveLength(1);
  });
});
