import type { Cluster } from 'ioredis';
import type { Config } from '../src/config.js';
import type { Database } from '../src/db/client.js';
import type { Logger } from '../src/logger.js';
import { listCursors } from '../src/store/cursors.js';
import { peersRefusing, refusedBetween } from '../src/store/dlq.js';
import { FEED_START, comparePositions, type FeedPosition } from '../src/store/feed.js';
import type { RedisClient } from './connection.js';

export const ackChannel = (prefix: string) => `${prefix}:memfed:acks`;

/**
 * Published by a push run once the peer has answered for everything from `from` to the
 * position (the cursor write may still be in progress, or fail and the page be sent
 * again): `refused` lists every position in between that the peer refused (dead-lettered
 * before this is published).
 */
export async function publishAck(redis: RedisClient, prefix: string, peerId: string, position: FeedPosition, refused: FeedPosition[], from: FeedPosition): Promise<void> {
  const message = JSON.stringify({ peer: peerId, txid: position.txid, seq: position.seq, refused, from });
  if (isCluster(redis) && shardedPubSub.get(redis) !== false) {
    try {
      await redis.spublish(ackChannel(prefix), message);
      return;
    } catch (err) {
      if (!isUnknownCommand(err)) throw err;
      shardedPubSub.set(redis, false);
    }
  }
  await redis.publish(ackChannel(prefix), message);
}

/*
 * On a Redis Cluster the channel is sharded (SPUBLISH/SSUBSCRIBE, Redis 7): a message goes
 * to the shard that owns the channel's slot only, not over the cluster bus to every node.
 * A server without sharded pub/sub (Redis 6) answers "unknown command": classic pub/sub
 * then, which a cluster forwards everywhere. Lost or late messages only delay a quorum
 * answer: a waiter reads the cursors in Postgres before it gives up.
 */
const isCluster = (r: RedisClient): r is Cluster => (r as Cluster).isCluster === true;
const isUnknownCommand = (err: unknown) => /unknown command/i.test(String((err as Error | undefined)?.message ?? err));
const shardedPubSub = new WeakMap<RedisClient, boolean>();

/** Subscribes to the ack channel, sharded on a cluster where the server supports it. */
async function subscribeAcks(subscriber: RedisClient, channel: string, onMessage: (channel: string, message: string) => void): Promise<void> {
  if (isCluster(subscriber)) {
    try {
      subscriber.on('smessage', onMessage);
      await subscriber.ssubscribe(channel);
      return;
    } catch (err) {
      subscriber.off('smessage', onMessage);
      if (!isUnknownCommand(err)) throw err;
    }
  }
  subscriber.on('message', onMessage);
  await subscriber.subscribe(channel);
}

const posKey = (p: FeedPosition) => `${p.txid}.${p.seq}`;
const REFUSED_KEPT = 10_000;

interface Waiter {
  position: FeedPosition;
  needed: number;
  resolve: (acks: number) => void;
}

interface AckMessage {
  peer: string;
  txid: string;
  seq: string;
  refused?: FeedPosition[];
  from?: FeedPosition;
}

const isPosition = (p: unknown): p is FeedPosition => typeof (p as FeedPosition | null)?.txid === 'string' && typeof (p as FeedPosition).seq === 'string';

/**
 * One Redis subscriber per API process tracks how far each peer has acknowledged the
 * change feed (published by push workers after every advanced cursor). Quorum waiters
 * resolve as soon as enough peers are past their write's position without refusing it.
 *
 * A cursor alone cannot tell an ack from a refusal, so a peer's known position only
 * moves once its refusals up to there are known: carried by a message that continues
 * where the last one ended, or else (a lost or reordered message, a position read from
 * the database) read from the DLQ first. Every path that resolves a waiter goes through
 * that one rule.
 */
export class AckTracker {
  /** Per peer: the position up to which its acks and refusals are both known. */
  private latest = new Map<string, FeedPosition>();
  private waiters = new Set<Waiter>();
  /** Positions each peer refused (dead-lettered): passing them is not an ack. Bounded. */
  private refused = new Map<string, Set<string>>();
  /** Per peer, advances applied one at a time in arrival order. */
  private chains = new Map<string, Promise<void>>();
  private started = false;

  /**
   * `active`: the peers that count for quorum, read live (the runtime peer list's map,
   * updated in place): a paused peer is not in it, so it counts as unavailable.
   */
  constructor(
    private readonly subscriber: RedisClient,
    private readonly config: Config,
    private readonly database: Database,
    private readonly logger: Logger,
    private readonly active: ReadonlyMap<string, unknown> = new Map(config.federation.peers.map((p) => [p.id, p])),
  ) {}

  async start(): Promise<void> {
    await subscribeAcks(this.subscriber, ackChannel(this.config.queuePrefix), (_channel: string, message: string) => {
      let m: AckMessage;
      try {
        m = JSON.parse(message) as AckMessage;
      } catch {
        return; // a foreign message
      }
      if (!this.active.has(m?.peer)) return;
      const at = { txid: String(m.txid), seq: String(m.seq) };
      const carried = Array.isArray(m.refused) ? m.refused.filter(isPosition) : [];
      void this.inOrder(m.peer, () => this.advance(m.peer, at, carried, isPosition(m.from) ? m.from : null));
    });
    await this.refreshFromDatabase();
    this.started = true;
  }

  /** Cursors are the truth: read at start and before declaring a timeout (a message may be missed). */
  async refreshFromDatabase(): Promise<void> {
    const cursors = (await listCursors(this.database.db)).filter((c) => this.active.has(c.peerId));
    await Promise.all(cursors.map((c) => this.inOrder(c.peerId, () => this.advance(c.peerId, { txid: c.txid, seq: c.seq }, [], null))));
  }

  private inOrder(peer: string, step: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(peer) ?? Promise.resolve()).then(step).catch((err) => this.logger.warn({ err, peer }, 'ack tracking step failed; the next cursor read retries'));
    this.chains.set(peer, next);
    return next;
  }

  /**
   * Moves the peer's known position to `to` once its refusals up to there are known:
   * `carried` covers (from, to]; if `from` is not where the known position stands (or
   * there is no message), the DLQ is read for what lies between.
   */
  private async advance(peer: string, to: FeedPosition, carried: FeedPosition[], from: FeedPosition | null): Promise<void> {
    const cur = this.latest.get(peer);
    const learned = [...carried];
    if (cur === undefined && !this.started) {
      // The start-up baseline: every write a waiter will wait for comes after it.
    } else if (cur !== undefined && comparePositions(to, cur) <= 0) {
      // Old news (a reordered message): its refusals may still be new.
    } else if (from === null || cur === undefined || comparePositions(from, cur) > 0) {
      learned.push(...(await refusedBetween(this.database.db, peer, cur ?? FEED_START, to)));
    }
    this.learnRefusals(peer, learned);
    const now = this.latest.get(peer);
    if (!now || comparePositions(to, now) > 0) this.latest.set(peer, to);
    this.settle();
  }

  private learnRefusals(peer: string, positions: FeedPosition[]): void {
    if (positions.length === 0) return;
    const set = this.refused.get(peer) ?? new Set<string>();
    for (const p of positions) set.add(posKey(p));
    while (set.size > REFUSED_KEPT) set.delete(set.values().next().value as string);
    this.refused.set(peer, set);
  }

  /** Resolves every waiter whose quorum is met, or can no longer be met. */
  private settle(): void {
    for (const w of this.waiters) {
      const acks = this.countAcks(w.position);
      if (acks >= w.needed) {
        this.waiters.delete(w);
        w.resolve(acks);
      } else if (this.hopeless(w.position, w.needed)) {
        // Enough peers refused the row that the quorum can never be met: answer now.
        this.waiters.delete(w);
        w.resolve(-1);
      }
    }
  }

  private countAcks(write: FeedPosition, exclude: Set<string> = new Set()): number {
    let n = 0;
    for (const [peer, pos] of this.latest) if (this.active.has(peer) && !exclude.has(peer) && this.acks(peer, pos, write)) n++;
    return n;
  }

  /** Active peers that dead-lettered the write at `write` (known to this process). */
  private refusersOf(write: FeedPosition): Set<string> {
    const out = new Set<string>();
    for (const [peer, set] of this.refused) if (this.active.has(peer) && set.has(posKey(write))) out.add(peer);
    return out;
  }

  /** The refusals (and paused peers) leave fewer than `needed` peers that could still ack. */
  private hopeless(write: FeedPosition, needed: number): boolean {
    return this.refusersOf(write).size > this.active.size - needed;
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
    const early = this.countAcks(position);
    if (early >= needed) return { acks: early, refused: 0 };
    // Too few active peers (the others paused): answered now, as the timeout would answer.
    const got = this.active.size < needed ? -1 : await new Promise<number>((resolve) => {
      const w: Waiter = { position, needed, resolve };
      this.waiters.add(w);
      setTimeout(() => {
        if (this.waiters.delete(w)) resolve(-1);
      }, timeoutMs).unref();
    });
    if (got >= 0) return { acks: got, refused: 0 };
    await this.refreshFromDatabase().catch((err) => this.logger.warn({ err }, 'cursor refresh failed'));
    // The DLQ is asked directly too: a refusal this process never learned of is still one.
    const refusing = await peersRefusing(this.database.db, position).catch(() => new Set<string>());
    for (const peer of this.refusersOf(position)) refusing.add(peer);
    return { acks: this.countAcks(position, refusing), refused: [...refusing].filter((p) => this.active.has(p)).length };
  }

  async close(): Promise<void> {
    for (const w of this.waiters) w.resolve(this.countAcks(w.position));
    this.waiters.clear();
    await this.subscriber.quit().catch(() => this.subscriber.disconnect());
  }
}
