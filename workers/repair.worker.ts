import type { Job } from 'bullmq';
import { flavourTraits } from '../src/federation/peers.js';
import { repairDepsFrom, repairWithPeer, type RepairResult } from '../src/repair/run.js';
import type { RepairJob } from '../queues/repair.js';
import type { WorkerContext } from './context.js';

/** `repair.run`: one anti-entropy run against a memfed peer (src/repair/run.ts); a failure is retried with backoff. */
export function repairProcessor(ctx: WorkerContext) {
  return async (job: Job<RepairJob>): Promise<RepairResult | { skipped: string }> => {
    const peer = ctx.peers.get(job.data.peerId);
    if (!peer) return { skipped: `peer ${job.data.peerId} is not active` };
    if (!flavourTraits(peer.flavour).antiEntropy) return { skipped: `peer ${peer.id} (${peer.flavour}) has no repair endpoint` };
    const deps = repairDepsFrom(ctx.config, { db: ctx.database.db, client: ctx.client, logger: ctx.logger, metrics: ctx.metrics, audit: ctx.audit, policy: ctx.policy });
    return repairWithPeer(deps, peer, job.data.trigger);
  };
}
