import type { Queue } from 'bullmq';
import { RETENTION, defineQueue, jobName, safeKey } from './definition.js';

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

export const repairSchedulerId = (peerId: string) => `${SCHEDULER_PREFIX}${safeKey(peerId)}`;
const repairDedupId = (peerId: string, trigger: RepairJob['trigger']) => `repair-${trigger}-${safeKey(peerId)}`;

/** A run now (operator, or after a restore); one pending run per peer and trigger. */
export async function enqueueRepair(queue: Queue<RepairJob>, peerId: string, trigger: Exclude<RepairJob['trigger'], 'schedule'>): Promise<void> {
  await queue.add(jobName(REPAIR_RUN, peerId), { peerId, trigger }, { deduplication: { id: repairDedupId(peerId, trigger) } });
}

/** One scheduler per active memfed peer (upserted for `peerIds`); with `prune`, the others' go. */
export async function syncRepairSchedulers(queue: Queue<RepairJob>, peerIds: string[], everyMs: number, prune = true): Promise<{ removed: string[] }> {
  for (const peerId of peerIds) {
    await queue.upsertJobScheduler(repairSchedulerId(peerId), { every: everyMs }, { name: jobName(REPAIR_RUN, peerId), data: { peerId, trigger: 'schedule' } });
  }
  return { removed: prune ? await pruneRepairSchedulers(queue, peerIds) : [] };
}

/** Removes the repair schedulers of every peer not in `keepPeerIds`. */
export async function pruneRepairSchedulers(queue: Queue<RepairJob>, keepPeerIds: string[]): Promise<string[]> {
  const wanted = new Set(keepPeerIds.map(repairSchedulerId));
  const removed: string[] = [];
  for (const s of await queue.getJobSchedulers(0, -1)) {
    if (s.key.startsWith(SCHEDULER_PREFIX) && !wanted.has(s.key)) {
      await queue.removeJobScheduler(s.key);
      removed.push(s.key);
    }
  }
  return removed;
}

/** The peers (of `peerIds`) whose scheduler is missing (a Redis restarted empty). */
export async function peersWithoutRepairScheduler(queue: Queue<RepairJob>, peerIds: string[]): Promise<string[]> {
  const found = await Promise.all(peerIds.map(async (p) => ((await queue.getJobScheduler(repairSchedulerId(p))) ? null : p)));
  return found.filter((p): p is string => p !== null);
}

export async function removeRepairSchedulers(queue: Queue<RepairJob>, peerIds: string[]): Promise<void> {
  for (const peerId of peerIds) await queue.removeJobScheduler(repairSchedulerId(peerId));
}

/** Runs requested by an operator or a restore detection: one peer, or every active memfed peer. */
export async function requestRepair(queue: Queue<RepairJob>, active: ReadonlyMap<string, { id: string; flavour?: string }>, peerId: string | null, trigger: 'operator' | 'restored'): Promise<void> {
  const ids = peerId !== null ? [peerId] : [...active.values()].filter((p) => (p.flavour ?? 'memfed') === 'memfed').map((p) => p.id);
  for (const id of ids) await enqueueRepair(queue, id, trigger);
}
