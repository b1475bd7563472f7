import type { Queue } from 'bullmq';
import { RETENTION, defineQueue, jobName, perPeerSchedulers, safeKey } from './definition.js';

/** One anti-entropy repair run against a memfed peer (src/repair/run.ts). */
export interface RepairJob {
  peerId: string;
  trigger: 'schedule' | 'operator' | 'restored';
}

export const REPAIR_RUN = 'repair.run';
const SCHEDULER_PREFIX = 'repair-';

export const repairQueue = defineQueue<RepairJob>()({
  name: 'repair',
  // A post-restore or operator run that fails (peer down) is retried with backoff; a
  // scheduled one is simply run again by the next tick.
  jobOptions: { ...RETENTION, attempts: 8, backoff: { type: 'exponential', delay: 5_000 } },
  concurrency: (config) => config.concurrency.repair,
  afterFinalFailure: 'the next scheduled repair compares everything again',
});

const schedulers = perPeerSchedulers<RepairJob>(SCHEDULER_PREFIX, (peerId) => ({ name: jobName(REPAIR_RUN, peerId), data: { peerId, trigger: 'schedule' } }));
export const repairSchedulerId = schedulers.schedulerId;
const repairDedupId = (peerId: string, trigger: RepairJob['trigger']) => `repair-${trigger}-${safeKey(peerId)}`;

/** A run now (operator, or after a restore); one pending run per peer and trigger. */
export async function enqueueRepair(queue: Queue<RepairJob>, peerId: string, trigger: Exclude<RepairJob['trigger'], 'schedule'>): Promise<void> {
  await queue.add(jobName(REPAIR_RUN, peerId), { peerId, trigger }, { deduplication: { id: repairDedupId(peerId, trigger) } });
}

/** One scheduler per active memfed peer: upserted, pruned, found missing, removed (perPeerSchedulers). */
export const syncRepairSchedulers = schedulers.sync;
export const pruneRepairSchedulers = schedulers.prune;
export const peersWithoutRepairScheduler = schedulers.missing;
export const removeRepairSchedulers = schedulers.remove;

/** Runs requested by an operator or a restore detection: one peer, or every active memfed peer. */
export async function requestRepair(queue: Queue<RepairJob>, active: ReadonlyMap<string, { id: string; flavour?: string }>, peerId: string | null, trigger: 'operator' | 'restored'): Promise<void> {
  const ids = peerId !== null ? [peerId] : [...active.values()].filter((p) => (p.flavour ?? 'memfed') === 'memfed').map((p) => p.id);
  for (const id of ids) await enqueueRepair(queue, id, trigger);
}
