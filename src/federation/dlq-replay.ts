import { randomUUID } from 'node:crypto';
import type { AuditRecorder } from '../audit/events.js';
import type { Config, PeerConfig } from '../config.js';
import type { Db } from '../db/client.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { countReplayable, leaseReplayable, markFailed, markReplayed, releaseLease, renewLease, type DlqRow } from '../store/dlq.js';
import type { StoredMemory } from '../store/memories.js';
import { loadStored, type Tombstone } from '../store/replica.js';
import type { Memory } from '../memory/model.js';
import { isExpired, isExpiredAt } from '../memory/expiry.js';
import { nowMicros } from '../memory/time.js';
import { PeerRequestError, type PeerClient } from './client.js';
import { itemFromStored, itemId, memoryItem, tombstoneItem, type Item } from './feed-page.js';
import { rowBudgetFor, sendThroughBreaker } from './pusher.js';
import type { BreakerMode, RefusalBreaker } from './refusal-breaker.js';

export const REPLAY_FLOOR = 64;
/** Replay batches to one peer in flight at once (DLQ rows are independent; pushes keep one). */
const REPLAY_IN_FLIGHT = 2;
const LEASE_MS = 120_000;

export interface ReplayDeps {
  db: Db;
  client: PeerClient;
  selfId: string;
  /** The active peers (read live): a paused or removed peer's rows wait. */
  peers: ReadonlyMap<string, PeerConfig>;
  batchMax: number;
  /** Body byte cap of one replay push (PUSH_BATCH_MAX_BYTES), capped per peer flavour like pushes. */
  batchMaxBytes: number;
  maxAttempts: number;
  replayMaxBatch: number;
  logger: Logger;
  metrics: Metrics;
  /** The node's refusal breaker (absent, e.g. `memfed dlq replay`: always split mode). */
  breaker?: RefusalBreaker;
  /** Called once per row when it is quarantined (audit + log). */
  onQuarantine(rows: DlqRow[]): void;
}

export interface ReplayRound {
  backlog: number;
  taken: number;
  replayed: number;
  failed: number;
  throttled: number;
  quarantined: number;
}

/**
 * Replay dependencies from config, for every place that runs rounds (DLQ worker, CLI):
 * one quarantine handling everywhere (metric, one error log, audit event per row).
 */
export function replayDepsFrom(
  config: Config,
  parts: { db: Db; client: PeerClient; logger: Logger; metrics: Metrics; audit: AuditRecorder; peers?: ReadonlyMap<string, PeerConfig>; breaker?: RefusalBreaker },
): ReplayDeps {
  const { db, client, logger, metrics, audit } = parts;
  return {
    db,
    client,
    logger,
    metrics,
    ...(parts.breaker ? { breaker: parts.breaker } : {}),
    selfId: config.nodeId,
    peers: parts.peers ?? new Map(config.federation.peers.map((p) => [p.id, p])),
    batchMax: config.push.batchMax,
    batchMaxBytes: config.push.batchMaxBytes,
    maxAttempts: config.dlq.maxReplayAttempts,
    replayMaxBatch: config.dlq.replayMaxBatch,
    onQuarantine: (rows) => {
      for (const row of rows) {
        metrics.dlqQuarantines.inc({ peer: row.peerId });
        logger.error({ peer: row.peerId, memory: row.memoryId, dlqId: row.id, attempts: row.attempts, err: row.lastError }, 'DLQ row quarantined; an operator must requeue or purge it');
        audit.record({ kind: 'dlq.quarantined', subject: row.memoryId, details: { peer: row.peerId, dlq_id: row.id, attempts: row.attempts, failure_class: row.failureClass, last_error: row.lastError } });
      }
    },
  };
}

/** `clamp(backlog, 64, DLQ_REPLAY_MAX_BATCH)` (docs/invariants.md, point 7). */
export const adaptiveTake = (backlog: number, max: number) => Math.min(Math.max(backlog, REPLAY_FLOOR), max);

/**
 * One replay round: lease the oldest replayable rows, group them per peer into batch
 * pushes of the rows' current state (a memory changed since it was refused is sent as
 * it is now; one deleted since, as its tombstone), then settle each row: ack = replayed;
 * refusal = attempt+1 (quarantined at the limit); throttle = untouched.
 */
export async function replayRound(deps: ReplayDeps, opts: { peerId?: string } = {}): Promise<ReplayRound> {
  return sendLeased(deps, await takeLease(deps, opts));
}

/** Rows leased for one round, to the peers active when they were taken. */
interface Lease {
  peers: Map<string, PeerConfig>;
  owner: string;
  rows: DlqRow[];
  backlog: number;
  at: number;
}

async function takeLease(deps: ReplayDeps, opts: { peerId?: string }): Promise<Lease> {
  // A snapshot: the live list may lose a peer (paused) while its leased rows are sent.
  const peers = new Map(deps.peers);
  const peerIds = opts.peerId !== undefined ? (peers.has(opts.peerId) ? [opts.peerId] : []) : [...peers.keys()];
  const owner = randomUUID();
  if (peerIds.length === 0) return { peers, owner, rows: [], backlog: 0, at: Date.now() };
  // Taking up to DLQ_REPLAY_MAX_BATCH rows takes exactly clamp(backlog, 64, max) of them, so
  // the count (for the round's report) runs beside the lease instead of before it.
  const [backlog, rows] = await Promise.all([countReplayable(deps.db, peerIds), leaseReplayable(deps.db, peerIds, adaptiveTake(Number.MAX_SAFE_INTEGER, deps.replayMaxBatch), owner, LEASE_MS)]);
  return { peers, owner, rows, backlog: Math.max(backlog, rows.length), at: Date.now() };
}

async function sendLeased(deps: ReplayDeps, lease: Lease): Promise<ReplayRound> {
  const { peers, owner, rows } = lease;
  let leasedAt = lease.at;
  const round: ReplayRound = { backlog: lease.backlog, taken: rows.length, replayed: 0, failed: 0, throttled: 0, quarantined: 0 };
  if (rows.length === 0) return round;
  const stored = await loadStored(deps.db, [...new Set(rows.map((r) => r.memoryId))]);
  const byPeer = new Map<string, DlqRow[]>();
  for (const r of rows) {
    const list = byPeer.get(r.peerId);
    if (list) list.push(r);
    else byPeer.set(r.peerId, [r]);
  }

  const now = nowMicros();
  for (const [peerId, leased] of byPeer) {
    const peer = peers.get(peerId)!;
    const count = (outcome: string, n: number) => n > 0 && deps.metrics.dlqReplays.inc({ peer: peerId, outcome }, n);
    // A row whose memory has expired since it was refused is served to no peer: nothing is
    // left to deliver (the peer expires or never needs it), so it is settled as replayed.
    const expired = leased.filter((r) => expiredNow(r, stored, now));
    if (expired.length > 0) {
      round.replayed += await markReplayed(deps.db, expired.map((r) => r.id), owner);
      count('expired', expired.length);
    }
    const peerRows = leased.filter((r) => !expired.includes(r));
    if (peerRows.length === 0) continue;
    // Batches of at most batchMax rows and the peer's body budget (a row over it goes alone);
    // they stop at the first peer-level failure (the rest are released).
    const itemOf = new Map(peerRows.map((r) => [r.id, toItem(r, stored)]));
    const batches = chunkRows(peerRows, (r) => itemOf.get(r.id)!.bytes, deps.batchMax, rowBudgetFor(peer, deps.selfId, deps.batchMaxBytes));
    // Up to REPLAY_IN_FLIGHT batches are sent and settled at once (a round's rows are
    // distinct memories, so their applies and settles commute).
    const lost = new Set<number>();
    const sending = new Set<Promise<void>>();
    let stopped = false;
    const send = async (chunk: DlqRow[], mode: BreakerMode) => {
      try {
        const refused = await sendThroughBreaker(deps, peer, chunk.map((r) => itemOf.get(r.id)!), mode, { mayOpen: false });
        const refusedIds = new Map(refused.map((f) => [itemId(f.item), f]));
        const ok = chunk.filter((r) => !refusedIds.has(r.memoryId)).map((r) => r.id);
        const failures = chunk.filter((r) => refusedIds.has(r.memoryId)).map((r) => ({ id: r.id, failureClass: refusedIds.get(r.memoryId)!.failureClass, error: refusedIds.get(r.memoryId)!.error }));
        const [replayed, q] = await Promise.all([markReplayed(deps.db, ok, owner), markFailed(deps.db, failures, owner, deps.maxAttempts)]);
        round.replayed += replayed;
        round.failed += failures.length;
        round.quarantined += q.length;
        count('replayed', ok.length);
        count('failed', failures.length);
        if (q.length) deps.onQuarantine(q);
      } catch (err) {
        if (!(err instanceof PeerRequestError)) throw err;
        // The peer, not the rows, failed (down, throttling, refusing our identity): the rows
        // were never judged, so no attempt is burnt and their refusal reason is kept. A long
        // outage therefore never quarantines a backlog; the peer's state has its own alerts.
        // No further batch starts; the rows not sent are given back below.
        stopped = true;
        await releaseLease(deps.db, chunk.map((r) => r.id), owner);
        const outcome = err.failureClass === 'throttle' ? 'throttled' : 'peer_unavailable';
        if (err.failureClass === 'throttle') round.throttled += chunk.length;
        count(outcome, chunk.length);
        deps.logger.warn({ peer: peerId, err: err.message }, 'DLQ replay to peer failed; will retry next round');
      }
    };
    let unsentFrom = peerRows.length;
    let loopError: unknown = null;
    try {
      for (let b = 0, i = 0; b < batches.length; i += batches[b]!.length, b++) {
        if (stopped) {
          unsentFrom = i;
          break;
        }
        // A long round renews the rest of its lease before it runs low, so no other replayer
        // takes these rows. A row whose lease a newer refusal dropped meanwhile may still be
        // sent once more: its settle matches nothing (owner check) and it stays pending.
        if (Date.now() - leasedAt > LEASE_MS / 4) {
          const owned = await renewLease(deps.db, peerRows.slice(i).map((r) => r.id), owner, LEASE_MS);
          leasedAt = Date.now();
          for (const r of peerRows.slice(i)) if (!owned.has(r.id)) lost.add(r.id);
        }
        const chunk = batches[b]!.filter((r) => !lost.has(r.id));
        if (chunk.length === 0) continue;
        const mode = deps.breaker ? await deps.breaker.mode(peerId) : 'split';
        if (mode === 'whole') {
          // The peer refuses whole batches and no probe is due: its rows would only be refused
          // again, so none is sent and no attempt is burnt; the breaker's probe decides when.
          count('breaker_open', peerRows.length - i);
          unsentFrom = i;
          break;
        }
        const job = send(chunk, mode);
        sending.add(job);
        job.then(
          () => sending.delete(job),
          () => sending.delete(job),
        );
        // A probe decides the breaker's state for the batches after it: it goes alone.
        if (sending.size >= REPLAY_IN_FLIGHT || mode === 'probe') await Promise.race(sending);
      }
    } catch (err) {
      loopError = err;
    }
    // Every batch started is awaited (and its outcome written) before the round ends.
    const sent = await Promise.allSettled([...sending]);
    if (loopError === null && unsentFrom < peerRows.length) await releaseLease(deps.db, peerRows.slice(unsentFrom).map((r) => r.id), owner);
    const failed = sent.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (loopError !== null) throw loopError;
    if (failed) throw failed.reason;
  }
  return round;
}

export interface ReplayRun extends ReplayRound {
  rounds: number;
  /** The budget ran out with rows still replayable: continue at once. */
  more: boolean;
}

/** Rounds while they make progress, within `budgetMs` (0: one round, then a follow-up). */
export async function replayWithinBudget(deps: ReplayDeps, opts: { peerId?: string }, budgetMs: number): Promise<ReplayRun> {
  const started = Date.now();
  const total: ReplayRun = { backlog: 0, taken: 0, replayed: 0, failed: 0, throttled: 0, quarantined: 0, rounds: 0, more: false };
  let next = takeLease(deps, opts);
  for (;;) {
    const lease = await next;
    // The next round's rows are leased while this round is sent (the lease skips rows leased
    // here, so they are the next oldest); given back untouched if no next round runs.
    const ahead = lease.rows.length > 0 ? takeLease(deps, opts) : null;
    ahead?.catch(() => undefined);
    const giveBack = async () => {
      const l = ahead ? await ahead.catch(() => null) : null;
      if (l && l.rows.length > 0) await releaseLease(deps.db, l.rows.map((r) => r.id), l.owner);
      return l !== null && l.rows.length > 0;
    };
    let r: ReplayRound;
    try {
      r = await sendLeased(deps, lease);
    } catch (err) {
      await giveBack().catch(() => undefined);
      throw err;
    }
    total.rounds++;
    total.backlog = r.backlog;
    total.taken += r.taken;
    total.replayed += r.replayed;
    total.failed += r.failed;
    total.throttled += r.throttled;
    total.quarantined += r.quarantined;
    if (r.replayed === 0 || r.taken === 0) {
      await giveBack();
      return total;
    }
    if (Date.now() - started >= budgetMs) {
      const aheadHadRows = await giveBack();
      total.more = aheadHadRows || r.backlog - r.taken > 0;
      return total;
    }
    // The rows read ahead, unless they came back empty: rows this round gave back (a peer
    // failure, an open breaker) were still leased then, so look again.
    const following = ahead ? await ahead : null;
    next = following && following.rows.length > 0 ? Promise.resolve(following) : takeLease(deps, opts);
  }
}

/** Consecutive runs of `rows` of at most `maxRows` rows and `maxBytes` bytes each (a row over `maxBytes` alone). */
export function chunkRows<T>(rows: T[], bytesOf: (row: T) => number, maxRows: number, maxBytes: number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const row of rows) {
    const b = bytesOf(row);
    if (cur.length > 0 && (cur.length >= maxRows || bytes + b > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(row);
    bytes += b;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** The row's memory as it would be sent (current state, else the refused payload) has expired. */
function expiredNow(row: DlqRow, stored: Map<string, StoredMemory>, now: number): boolean {
  const current = stored.get(row.memoryId);
  if (current) return current.deletedAt === null && isExpired(current.memory, now);
  return row.op !== 'delete' && isExpiredAt((row.payload as Partial<Memory> | null)?.expires_at, now);
}

function toItem(row: DlqRow, stored: Map<string, StoredMemory>): Item {
  const current = stored.get(row.memoryId);
  if (current) return itemFromStored(current);
  // No longer in the store: send what was refused.
  return row.op === 'delete' ? tombstoneItem(row.payload as Tombstone) : memoryItem(row.payload as Memory);
}
