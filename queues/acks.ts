import type { Redis } from 'ioredis';
import type { Config } from '../src/config.js';
import type { Database } from '../src/db/client.js';
import type { Logger } from '../src/logger.js';
import { listCursors } from '../src/store/cursors.js';
import { peersRefusing } from '../src/store/dlq.js';
import { comparePositions, type FeedPosition } from '../src/store/feed.js';

export const ackChannel = (prefix: string) => `${prefix}:memfed:acks`;

export async function publishAck(redis: Redis, prefix: string, peerId: string, position: FeedPosition, refused: FeedPosition[] = []): Promise<void> {
  await redis.publish(ackChannel(prefix), JSON.stringify({ peer: peerId, txid: position.txid, seq: position.seq, refused }));
}

const posKey = (p: FeedPosition) => `${p.txid}.${p.seq}`;
const REFUSED_KEPT = 10_000;

interface Waiter {
  position: FeedPosition;
  acked: Set<string>;
  needed: number;
  resolve: (acks: number) => void;
}

/**
 * One Redis subscriber per API process tracks how far each peer has acknowledged the
 * change feed (published by push workers after every advanced cursor). Quorum waiters
 * resolve as soon as enough peers are past their write's position.
 */
export class AckTracker {
  private latest = new Map<string, FeedPosition>();
  private waiters = new Set<Waiter>();
  /** Positions each peer refused (dead-lettered): passing them is not an ack. Bounded. */
  private refused = new Map<string, Set<string>>();
  private readonly peerIds: Set<string>;

  constructor(
    private readonly subscriber: Redis,
    private readonly config: Config,
    private readonly database: Database,
    private readonly logger: Logger,
  ) {
    this.peerIds = new Set(config.federation.peers.map((p) => p.id));
  }

  async start(): Promise<void> {
    const peers = this.peerIds;
    this.subscriber.on('message', (_channel: string, message: string) => {
      try {
        const m = JSON.parse(message) as { peer: string; txid: string; seq: string; refused?: FeedPosition[] };
        if (!peers.has(m.peer)) return;
        if (Array.isArray(m.refused) && m.refused.length > 0) {
          const set = this.refused.get(m.peer) ?? new Set<string>();
          for (const p of m.refused) set.add(posKey(p));
          while (set.size > REFUSED_KEPT) set.delete(set.values().next().value as string);
          this.refused.set(m.peer, set);
        }
        this.observe(m.peer, { txid: String(m.txid), seq: String(m.seq) });
      } catch {
        /* ignore foreign messages */
      }
    });
    await this.subscriber.subscribe(ackChannel(this.config.queuePrefix));
    await this.refreshFromDatabase();
  }

  /** Cursors are the truth: used at start and before declaring a timeout (a message may be missed). */
  async refreshFromDatabase(): Promise<void> {
    const peers = new Set(this.config.federation.peers.map((p) => p.id));
    for (const c of await listCursors(this.database.db)) if (peers.has(c.peerId)) this.observe(c.peerId, c);
  }

  private observe(peer: string, pos: FeedPosition): void {
    const cur = this.latest.get(peer);
    if (!cur || comparePositions(pos, cur) > 0) this.latest.set(peer, pos);
    for (const w of this.waiters) {
      if (this.acks(peer, pos, w.position)) w.acked.add(peer);
      if (w.acked.size >= w.needed) {
        this.waiters.delete(w);
        w.resolve(w.acked.size);
      } else if (this.hopeless(w.position, w.needed)) {
        // Enough peers refused the row that the quorum can never be met: answer now.
        this.waiters.delete(w);
        w.resolve(-1);
      }
    }
  }

  /** Peers that dead-lettered the write at `write` (known to this process). */
  private refusersOf(write: FeedPosition): Set<string> {
    const out = new Set<string>();
    for (const [peer, set] of this.refused) if (set.has(posKey(write))) out.add(peer);
    return out;
  }

  /** The refusals alone leave fewer than `needed` peers that could still ack. */
  private hopeless(write: FeedPosition, needed: number): boolean {
    return this.refusersOf(write).size > this.peerIds.size - needed;
  }

  /** A peer acks a write when its cursor passed the write and it did not refuse it. */
  private acks(peer: string, cursor: FeedPosition, write: FeedPosition): boolean {
    return comparePositions(cursor, write) >= 0 && !this.refused.get(peer)?.has(posKey(write));
  }

  /**
   * Waits until `needed` peers hold `position` or the deadline passes (or enough peers
   * refused it that the quorum cannot be met); returns the peer acks seen and how many
   * peers refused the row.
   */
  async waitFor(position: FeedPosition, needed: number, timeoutMs: number): Promise<{ acks: number; refused: number }> {
    const acked = new Set<string>();
    for (const [peer, pos] of this.latest) if (this.acks(peer, pos, position)) acked.add(peer);
    if (acked.size >= needed) return { acks: acked.size, refused: 0 };
    const got = await new Promise<number>((resolve) => {
      const w: Waiter = { position, acked, needed, resolve };
      this.waiters.add(w);
      setTimeout(() => {
        if (this.waiters.delete(w)) resolve(-1);
      }, timeoutMs).unref();
    });
    if (got >= 0) return { acks: got, refused: 0 };
    await this.refreshFromDatabase().catch((err) => this.logger.warn({ err }, 'cursor refresh failed'));
    // The cursor alone cannot tell a refusal from an ack: ask the DLQ too.
    const refusing = await peersRefusing(this.database.db, position).catch(() => new Set<string>());
    for (const peer of this.refusersOf(position)) refusing.add(peer);
    let n = 0;
    for (const [peer, pos] of this.latest) if (this.acks(peer, pos, position) && !refusing.has(peer)) n++;
    return { acks: n, refused: [...refusing].filter((p) => this.peerIds.has(p)).length };
  }

  async close(): Promise<void> {
    for (const w of this.waiters) w.resolve(w.acked.size);
    this.waiters.clear();
    await this.subscriber.quit().catch(() => this.subscriber.disconnect());
  }
}
