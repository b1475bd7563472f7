import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { createRedis } from '../../queues/connection.js';
import { enqueuePush } from '../../queues/push.js';
import { closeQueues, createQueues, type Queues } from '../../queues/registry.js';
import type { BenchContext } from './context.js';
import { REDIS_URL } from './infra.js';
import { median, now, pool } from './stats.js';

const IN_FLIGHT = 50;
const WORKER_CONCURRENCY = 8; // memfed's default PUSH_CONCURRENCY, used for both workers

/**
 * Section 2: BullMQ enqueue. enqueuePush (deduplicated per peer, memfed job options)
 * for distinct peers and for one peer over and over, against raw Queue.add of no-op
 * jobs on the same connection settings (createRedis 'producer'), each on a fresh prefix.
 * Then the processing rate of a no-op Worker over the memfed push jobs and over raw jobs.
 */
export async function enqueueSection(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const n = ctx.size(6000, 2000);
  const reps = ctx.size(5, 3);
  const producer = createRedis(REDIS_URL, 'producer', 'bench-producer');
  // A producer connection refuses commands until ready (enableOfflineQueue: false).
  if (producer.status !== 'ready') await new Promise((resolve) => producer.once('ready', resolve));
  const open: Array<{ close(): Promise<unknown> }> = [];
  const freshRaw = () => {
    const q = new Queue('noop', { connection: producer, prefix: infra.prefix('raw') });
    open.push(q);
    return q;
  };
  const freshMemfed = () => {
    const queues = createQueues(producer, infra.prefix('mf'));
    open.push({ close: () => closeQueues(queues) });
    return queues;
  };
  const rate = async (count: number, add: (i: number) => Promise<unknown>) => {
    const t = now();
    await pool(count, IN_FLIGHT, async (i) => void (await add(i)));
    return (count * 1000) / (now() - t);
  };

  try {
    // Warm up the connection, Lua script loading and the JIT.
    const warmRaw = freshRaw();
    await rate(500, (i) => warmRaw.add('noop', { i }));
    const warmMf = freshMemfed();
    await rate(500, (i) => enqueuePush(warmMf.push, `warm-${i}`, 'commit'));

    const raw: number[] = [];
    const distinct: number[] = [];
    const same: number[] = [];
    const rawProc: number[] = [];
    const mfProc: number[] = [];
    let lastRaw: Queue | null = null;
    let lastMf: Queues | null = null;
    for (let r = 0; r < reps; r++) {
      const runs: Array<() => Promise<void>> = [
        async () => {
          const q = (lastRaw = freshRaw());
          raw.push(await rate(n, (i) => q.add('noop', { i })));
        },
        async () => {
          const mf = (lastMf = freshMemfed());
          distinct.push(await rate(n, (i) => enqueuePush(mf.push, `peer-${i}`, 'commit')));
        },
        async () => {
          const mf = freshMemfed();
          same.push(await rate(n, () => enqueuePush(mf.push, 'peer-one', 'commit')));
          const waiting = await mf.push.getWaitingCount();
          if (waiting !== 1) throw new Error(`dedup per peer broken: ${waiting} waiting push jobs for one peer`);
        },
      ];
      // Rotate the order each repetition so no variant always runs first.
      for (let k = 0; k < runs.length; k++) await runs[(k + r) % runs.length]!();
      // Processing the jobs just added: memfed push jobs (memfed options) and raw no-op jobs.
      const procs = [
        async () => rawProc.push(await processRate(lastRaw!.name, lastRaw!.opts.prefix!, n)),
        async () => mfProc.push(await processRate('push', lastMf!.push.opts.prefix!, n)),
      ];
      for (let k = 0; k < procs.length; k++) await procs[(k + r) % procs.length]!();
    }
    const rawAdd = median(raw);
    report.add({ metric: `enqueuePush ${n} distinct peers`, value: median(distinct), unit: 'adds/s', baselineLabel: 'raw Queue.add no-op', baseline: rawAdd });
    report.add({ metric: `enqueuePush ${n}x same peer (dedup hit)`, value: median(same), unit: 'adds/s', baselineLabel: 'raw Queue.add no-op', baseline: rawAdd });
    report.note(`${IN_FLIGHT} adds in flight, median of ${reps} runs of ${n}; one waiting job after ${n} same-peer adds (dedup verified)`);

    report.add({ metric: `no-op Worker over ${n} memfed push jobs`, value: median(mfProc), unit: 'jobs/s', baselineLabel: 'raw no-op Worker', baseline: median(rawProc) });
    report.note(`workers: concurrency ${WORKER_CONCURRENCY}; memfed push jobs carry removeOnComplete {age 3600, count 1000} and dedup keys, raw jobs BullMQ defaults`);
  } finally {
    for (const q of open) await q.close().catch(() => {});
    await producer.quit().catch(() => producer.disconnect());
  }
}

/** Time for a no-op Worker (connected first, then started) to complete `count` waiting jobs. */
async function processRate(queueName: string, prefix: string, count: number): Promise<number> {
  const connection: Redis = createRedis(REDIS_URL, 'worker', 'bench-worker');
  const worker = new Worker(queueName, async () => undefined, { connection, prefix, concurrency: WORKER_CONCURRENCY, autorun: false });
  try {
    await worker.waitUntilReady();
    let done = 0;
    let t = 0;
    const finished = new Promise<number>((resolve) => {
      worker.on('completed', () => {
        if (++done === count) resolve(now());
      });
    });
    t = now();
    void worker.run();
    const end = await Promise.race([finished, new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`worker processed ${done}/${count} jobs in 60 s`)), 60_000).unref())]);
    return (count * 1000) / (end - t);
  } finally {
    await worker.close();
    await connection.quit().catch(() => connection.disconnect());
  }
}
