import type { Db } from '../src/db/client.js';
import type { Logger } from '../src/logger.js';
import type { Metrics } from '../src/metrics.js';
import { peerWasFailing } from '../src/store/cursors.js';
import { hasReplayable } from '../src/store/dlq.js';
import { enqueueCatchup } from './catchup.js';
import { enqueueDlqReplay } from './dlq.js';
import { enqueuePush } from './push.js';
import type { Queues } from './registry.js';

export interface RecoveryDeps {
  db: Db;
  queues: Pick<Queues, 'push' | 'dlq' | 'catchup'>;
  logger: Logger;
  metrics: Metrics;
}

/**
 * A peer we were failing to reach is back (it acked a push, or it contacted us):
 * deliver its backlog, replay its DLQ rows and pull from it now rather than at the next
 * tick. Each follow-up that cannot be enqueued is logged and counted; the periodic
 * reconciler, replay tick and catch-up scheduler still do the same work later.
 */
export async function onPeerRecovered(deps: RecoveryDeps, peerId: string, how: 'acked' | 'contacted' | 'resumed'): Promise<void> {
  deps.logger.info({ peer: peerId, how }, 'peer is back');
  const followUps: Array<[queue: keyof RecoveryDeps['queues'], run: () => Promise<void>]> = [
    ['push', () => enqueuePush(deps.queues.push, peerId, 'recovered')],
    ['dlq', async () => void ((await hasReplayable(deps.db, peerId)) && (await enqueueDlqReplay(deps.queues.dlq, 'recovered', peerId)))],
    ['catchup', () => enqueueCatchup(deps.queues.catchup, peerId, 'recovered')],
  ];
  await Promise.all(
    followUps.map(async ([queue, run]) => {
      try {
        await run();
      } catch (err) {
        deps.metrics.enqueueFailures.inc({ queue });
        deps.logger.warn({ err, peer: peerId, queue }, 'peer-recovered follow-up not enqueued; the periodic tick will do it');
      }
    }),
  );
}

// A chatty peer is checked at most this often.
const CONTACT_CHECK_MS = 5000;

/**
 * For the API: an active peer (`known`, read live) that contacts us while we had recorded failures for it
 * is back. Returns the callback the federation routes call on every authenticated contact.
 */
export function watchPeerContact(deps: RecoveryDeps, known: { has(peerId: string): boolean }): (peerId: string) => void {
  const lastCheck = new Map<string, number>();
  return (peerId) => {
    if (!known.has(peerId) || Date.now() - (lastCheck.get(peerId) ?? 0) < CONTACT_CHECK_MS) return;
    lastCheck.set(peerId, Date.now());
    peerWasFailing(deps.db, peerId)
      .then((failing) => (failing ? onPeerRecovered(deps, peerId, 'contacted') : undefined))
      .catch((err) => deps.logger.warn({ err, peer: peerId }, 'could not check whether a peer was failing'));
  };
}
