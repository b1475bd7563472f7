import type { Job, JobsOptions, Queue } from 'bullmq';
import type { Config } from '../src/config.js';
import type { QueueName } from '../src/queue-names.js';

/**
 * What one queue module declares: its name, default job options, how many jobs one
 * worker process runs at once, and (when all processes together must not exceed it) a
 * global concurrency. `P` is the payload type; payloads carry ids, never records.
 */
export interface QueueDefinition<N extends QueueName, P> {
  name: N;
  jobOptions: JobsOptions;
  concurrency(config: Config): number;
  globalConcurrency?: number;
  /** Logged with a job's final failure: what becomes of the work (nothing is lost). */
  afterFinalFailure?: string;
  /** Phantom: carries the payload type for the typed registry. */
  readonly payload?: P;
}

export const defineQueue = <P>() => <N extends QueueName>(def: Omit<QueueDefinition<N, P>, 'payload'>): QueueDefinition<N, P> => def;

/**
 * Completed jobs are kept an hour (Bull Board history), failed ones a week; a job keeps
 * the last 50 lines of its log (one per attempt, plus throttle and horizon waits).
 */
export const RETENTION: JobsOptions = {
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 7 * 86400, count: 5000 },
  keepLogs: 50,
};

/**
 * The BullMQ prefix of one queue. A QUEUE_PREFIX with a hash tag (`{mf-a}`) gets the
 * queue's name inside the tag (`{mf-a:push}`): every key of a queue shares one slot (its
 * scripts touch many at once) while the queues spread over a cluster's shards. A plain
 * prefix is used as it is (keys unchanged from before clusters were supported).
 */
export function queuePrefixFor(prefix: string, queue: QueueName): string {
  return prefix.replace(/\{([^}]+)\}/, (_all, tag: string) => `{${tag}:${queue}}`);
}

/** Job ids and scheduler ids never contain ':' (BullMQ's key separator); peer ids may. */
export function safeKey(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64url');
}

/**
 * Job names follow `<queue>.<job>` and, when a job serves one peer, the peer after a
 * space (`push.deliver host:b`), so Bull Board's job list tells them apart at a glance.
 */
export const jobName = (base: string, peerId?: string) => (peerId === undefined ? base : `${base} ${peerId}`);

/** If the job holding a dedup key sits delayed (in backoff), run it now. */
/** The waiting job due next (BullMQ adds at the list's head and takes from its tail). */
export async function nextWaitingJob(queue: Pick<Queue, 'getJobs'>): Promise<Job | undefined> {
  const [job] = await queue.getJobs(['waiting'], 0, 0, true);
  return job;
}

export async function promoteDelayed(queue: Queue, dedupId: string): Promise<void> {
  const jobId = await queue.getDeduplicationJobId(dedupId);
  if (!jobId) return;
  const job = await queue.getJob(jobId);
  if (job && (await job.isDelayed())) await job.promote().catch(() => {});
}

/**
 * Job schedulers kept one per peer (`<prefix><peer>`), as catch-up and repair keep them:
 * upserted for the active peers, the others' removed, the missing ones found after Redis
 * lost them.
 */
export function perPeerSchedulers<P>(prefix: string, template: (peerId: string) => { name: string; data: P }) {
  type SchedulerQueue = Pick<Queue, 'getJobSchedulers' | 'getJobScheduler' | 'removeJobScheduler' | 'upsertJobScheduler'>;
  const schedulerId = (peerId: string) => `${prefix}${safeKey(peerId)}`;
  /** Removes the schedulers of every peer not in `keepPeerIds`; returns their keys. */
  const prune = async (queue: SchedulerQueue, keepPeerIds: string[]): Promise<string[]> => {
    const wanted = new Set(keepPeerIds.map(schedulerId));
    const removed: string[] = [];
    for (const s of await queue.getJobSchedulers(0, -1)) {
      if (s.key.startsWith(prefix) && !wanted.has(s.key)) {
        await queue.removeJobScheduler(s.key);
        removed.push(s.key);
      }
    }
    return removed;
  };
  return {
    schedulerId,
    prune,
    /** Upserts one scheduler per peer of `peerIds`; with `andPrune`, the others' go. */
    async sync(queue: SchedulerQueue, peerIds: string[], everyMs: number, andPrune = true): Promise<{ removed: string[] }> {
      for (const peerId of peerIds) await queue.upsertJobScheduler(schedulerId(peerId), { every: everyMs }, template(peerId));
      return { removed: andPrune ? await prune(queue, peerIds) : [] };
    },
    /** The peers (of `peerIds`) whose scheduler is missing (a Redis restarted empty). */
    async missing(queue: SchedulerQueue, peerIds: string[]): Promise<string[]> {
      const found = await Promise.all(peerIds.map(async (p) => ((await queue.getJobScheduler(schedulerId(p))) ? null : p)));
      return found.filter((p): p is string => p !== null);
    },
    /** Removes the schedulers of `peerIds` (paused or removed at runtime). */
    async remove(queue: SchedulerQueue, peerIds: string[]): Promise<void> {
      for (const peerId of peerIds) await queue.removeJobScheduler(schedulerId(peerId));
    },
  };
}
