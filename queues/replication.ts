import type { QuorumOutcome, Replication } from '../src/api/deps.js';
import type { Config } from '../src/config.js';
import { PeerDirectory } from '../src/federation/peer-directory.js';
import type { Logger } from '../src/logger.js';
import type { Metrics } from '../src/metrics.js';
import type { FeedPosition } from '../src/store/feed.js';
import type { AckTracker } from './acks.js';
import { enqueuePush } from './push.js';
import type { Queues } from './registry.js';

/**
 * After a local commit: one push job per peer (deduplicated per peer), then wait for
 * W-1 peer acks. An enqueue failure (Redis down) never fails the request: the change
 * is durable in Postgres and the reconciler enqueues it once Redis is back.
 */
export class QueueReplication implements Replication {
  constructor(
    private readonly config: Config,
    private readonly queues: Queues,
    private readonly acks: AckTracker | null,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    /** The runtime peer list: pushes go to its active peers; paused ones count as unavailable. */
    private readonly peers: PeerDirectory = PeerDirectory.fixed(config.federation.peers),
  ) {}

  async afterCommit(position: FeedPosition | null): Promise<QuorumOutcome> {
    const { ackTimeoutMs } = this.config.federation;
    const known = this.peers.knownCount();
    // W is clamped to the peers known now (added or removed at runtime), not at start.
    const quorumW = Math.min(this.config.federation.quorumWanted ?? this.config.federation.quorumW, 1 + known);
    // Test-only fault: die between commit and enqueue (the reconciler must still deliver).
    if (this.config.faults.crashAfterCommit && position !== null) process.kill(process.pid, 'SIGKILL');
    if (known === 0 || position === null) return { met: true, acks: 1 };
    const started = process.hrtime.bigint();
    await Promise.all(
      [...this.peers.active.values()].map((p) =>
        enqueuePush(this.queues.push, p.id, 'commit', position).catch((err) => {
          this.metrics.enqueueFailures.inc({ queue: 'push' });
          this.logger.warn({ err: (err as Error).message, peer: p.id }, 'push enqueue failed; reconciler will deliver');
        }),
      ),
    );
    const needed = quorumW - 1;
    if (needed <= 0 || !this.acks) return { met: true, acks: 1 };
    const { acks: peerAcks, refused } = await this.acks.waitFor(position, needed, ackTimeoutMs);
    if (peerAcks >= needed) {
      this.metrics.quorumOutcomes.inc({ outcome: 'met' });
      this.metrics.quorumAckSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
      return { met: true, acks: 1 + peerAcks };
    }
    // `refused`: peers refused the row (a permanent refusal, dead-lettered) and the rest
    // cannot make up the quorum; otherwise no ack at all or too few in time.
    const reason = refused > known - needed ? 'refused' : peerAcks === 0 ? 'unreachable' : 'timeout';
    this.metrics.quorumOutcomes.inc({ outcome: reason });
    this.metrics.partialQuorum.inc();
    return { met: false, got: 1 + peerAcks, needed: quorumW, reason };
  }
}
