import type { PeerConfig } from '../config.js';
import type { Db } from '../db/client.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { advanceCursor, getCursor } from '../store/cursors.js';
import { deadLetter, type DeadLetter } from '../store/dlq.js';
import { FEED_START, type FeedPosition } from '../store/feed.js';
import { PeerRequestError, type PeerClient } from './client.js';
import { testFault } from '../test-faults.js';
import { itemId, readFeedPage, type FeedPage, type Item } from './feed-page.js';
import { pushBodyBudget } from './peers.js';
import type { BatchVerdict, BreakerMode, RefusalBreaker } from './refusal-breaker.js';
import { buildPushBody, pushBodyOf, type PushResponse } from './wire.js';
import { pushSnapshot } from './snapshot-push.js';
import { behindHorizon } from '../store/retention.js';
import type { AuditRecorder } from '../audit/events.js';

const DEFAULT_SNAPSHOT_TTL_MS = 3600_000;

export interface PusherDeps {
  db: Db;
  client: PeerClient;
  selfId: string;
  batchMax: number;
  batchMaxBytes: number;
  /**
   * PUSH_RELAY: rows applied from peers are sent on too (absent: true). Without it only
   * local writes are sent; the cursor still passes the rest.
   */
  relay?: boolean;
  logger: Logger;
  metrics: Metrics;
  /** Per-peer refusal breaker (absent: every batch is sent in split mode). */
  breaker?: RefusalBreaker;
  /**
   * Tells quorum waiters that the peer has answered for everything in (`from`, `position`],
   * except the `refused` positions (rows it dead-lettered): those are not acks.
   */
  publishAck(peerId: string, position: FeedPosition, refused: FeedPosition[], from: FeedPosition): Promise<void>;
  /**
   * Whether the peer is still one to send to (runtime peers): asked before every batch, so
   * a run stops at once when the peer is paused or removed (absent: always).
   */
  stillActive?: (peerId: string) => boolean;
  /** FEED_SNAPSHOT_TTL_MS, for the snapshot push of a peer behind the retained horizon. */
  snapshotTtlMs?: number;
  audit?: AuditRecorder;
}

/** The keys of the optional lanes (present only when a batch carries archives or links). */
const OPTIONAL_LANE_KEYS = Buffer.byteLength(',"archives":[],"restores":[],"archive_events":[],"links":[],"link_removals":[]');

/** The bytes of a push body with no rows: what `batchMaxBytes` must also cover. */
const envelopeBytes = (sender: string, recipient: string) => Buffer.byteLength(JSON.stringify(buildPushBody({ sender, recipient, memories: [], tombstones: [] }))) + OPTIONAL_LANE_KEYS;

/**
 * What the rows of one push body to `peer` may take: `batchMaxBytes`, capped for a peer
 * flavour with a body limit of its own (ai-memory 0.7: 2 MiB), minus the envelope.
 */
export const rowBudgetFor = (peer: PeerConfig, selfId: string, batchMaxBytes: number) => pushBodyBudget(peer, batchMaxBytes) - envelopeBytes(selfId, peer.id);

/** A row the peer refused, with why. */
export interface Refusal {
  item: Item;
  failureClass: 'permanent' | 'skipped' | 'id_drift';
  error: string;
}

export const refusalToDeadLetter = (peerId: string, r: Refusal): DeadLetter => ({
  peerId,
  memoryId: itemId(r.item),
  op: r.item.kind === 'memory' ? 'upsert' : 'delete',
  payload: r.item.kind === 'memory' ? r.item.memory : r.item.tombstone,
  failureClass: r.failureClass,
  error: r.error,
});

/** One refused row as a push job's result shows it (Bull Board): which, and the peer's reason. */
export interface RefusedRow {
  memoryId: string;
  op: DeadLetter['op'];
  failureClass: Refusal['failureClass'];
  reason: string;
}

/** A run's result lists at most this many refused rows (the DLQ holds them all). */
export const REFUSED_ROWS_SHOWN = 20;
const REASON_MAX_CHARS = 300;

const refusedRow = (r: Refusal): RefusedRow => ({ memoryId: itemId(r.item), op: r.item.kind === 'memory' ? 'upsert' : 'delete', failureClass: r.failureClass, reason: r.error.slice(0, REASON_MAX_CHARS) });

export interface PushRunResult {
  batches: number;
  rows: number;
  /** Rows the peer refused in this run (dead-lettered, then passed). */
  deadLettered: number;
  /** The first REFUSED_ROWS_SHOWN of them with the peer's reason; `deadLettered` counts all. */
  refused: RefusedRow[];
  caughtUp: boolean;
  /** The peer had a recorded failure and just acked: it is back (replay its DLQ, pull from it). */
  recovered: boolean;
  /** Where the peer's cursor stands after the run. */
  cursor: FeedPosition;
}

/**
 * Sends the peer every change after its cursor, in order, in signed batches of up to
 * `batchMax` rows and at most `batchMaxBytes` of body, less for a peer whose flavour has a
 * smaller body limit (one row larger than that goes alone), advancing the cursor only on the peer's ack.
 * Rows the peer refuses go to the DLQ and the cursor moves past them; transient,
 * throttle and unenrolled failures throw PeerRequestError with the cursor untouched.
 */
export async function pushToPeer(deps: PusherDeps, peer: PeerConfig, budgetMs: number): Promise<PushRunResult> {
  const started = Date.now();
  const out: PushRunResult = { batches: 0, rows: 0, deadLettered: 0, refused: [], caughtUp: false, recovered: false, cursor: FEED_START };
  let hadError: boolean | undefined;
  const rowBudget = rowBudgetFor(peer, deps.selfId, deps.batchMaxBytes);
  const readPage = (after: FeedPosition): Promise<FeedPage> => readFeedPage(deps.db, after, deps.batchMax, { excludeOrigin: peer.id, localOnly: deps.relay === false, maxBytes: rowBudget });
  // The page after the batch in flight, read while the peer handles that batch. Used only
  // if the cursor then stands exactly where it starts (the batch was acked, no other
  // runner moved it); else dropped (its failure is handled at once and ignored).
  let ahead: { after: FeedPosition; page: Promise<FeedPage> } | null = null;
  for (;;) {
    // Not even the cursor read: a purged peer's cursor must not be re-created by a run.
    if (deps.stillActive && !deps.stillActive(peer.id)) return { ...out, caughtUp: true };
    const cursor = await getCursor(deps.db, peer.id);
    hadError ??= cursor.lastErrorClass !== null;
    out.cursor = { txid: cursor.txid, seq: cursor.seq };
    const page: FeedPage = ahead && ahead.after.txid === cursor.txid && ahead.after.seq === cursor.seq ? await ahead.page : await readPage(cursor);
    ahead = null;
    // Behind the horizon (read after the page's entries), the feed cannot deliver: a snapshot does.
    if (behindHorizon(cursor, page.horizon)) {
      const snap = await pushSnapshot(
        {
          db: deps.db,
          logger: deps.logger,
          metrics: deps.metrics,
          ...(deps.audit ? { audit: deps.audit } : {}),
          batchMax: deps.batchMax,
          rowBudget,
          snapshotTtlMs: deps.snapshotTtlMs ?? DEFAULT_SNAPSHOT_TTL_MS,
          stillActive: () => !deps.stillActive || deps.stillActive(peer.id),
          send: async (items) => {
            const refusals = await sendThroughBreaker(deps, peer, items);
            const dead = refusals.map((r) => refusalToDeadLetter(peer.id, r));
            if (dead.length > 0) await deadLetter(deps.db, dead);
            countRefusedRows(deps.metrics, peer.id, dead);
            out.refused.push(...refusals.slice(0, REFUSED_ROWS_SHOWN - out.refused.length).map(refusedRow));
            out.deadLettered += dead.length;
            out.recovered ||= hadError === true;
            deps.metrics.pushedRows.inc({ peer: peer.id }, items.length - dead.length);
            return dead.length;
          },
        },
        peer,
        cursor,
        Math.max(0, budgetMs - (Date.now() - started)),
      );
      out.batches += snap.batches;
      out.rows += snap.rows;
      if (!snap.done) return out;
      continue;
    }
    const last = page.last;
    if (!last) {
      out.caughtUp = true;
      return out;
    }
    const items = page.items;
    let refusedIds = new Set<string>();
    if (testFault('cursor-before-ack')) await advanceCursor(deps.db, peer.id, last);
    const more = page.read >= deps.batchMax || page.cut;
    if (items.length > 0) {
      if (more) {
        ahead = { after: { txid: last.txid, seq: last.seq }, page: readPage(last) };
        ahead.page.catch(() => undefined);
      }
      const refusals = await sendThroughBreaker(deps, peer, items);
      const dead = refusals.map((r) => refusalToDeadLetter(peer.id, r));
      if (dead.length > 0) await deadLetter(deps.db, dead);
      countRefusedRows(deps.metrics, peer.id, dead);
      refusedIds = new Set(dead.map((d) => d.memoryId));
      out.refused.push(...refusals.slice(0, REFUSED_ROWS_SHOWN - out.refused.length).map(refusedRow));
      out.deadLettered += dead.length;
      out.rows += items.length - dead.length;
      out.batches++;
      out.recovered ||= hadError;
      deps.metrics.pushedRows.inc({ peer: peer.id }, items.length - dead.length);
    }
    // The peer has answered for the page (its refusals are in the DLQ already): quorum
    // waiters hear it while the cursor is written. A cursor write that then fails leaves
    // the page to be sent again, which the peer applies as a no-op.
    const refused = page.delivered.filter((e) => refusedIds.has(e.memoryId)).map((e) => ({ txid: e.txid, seq: e.seq }));
    const ack = deps.publishAck(peer.id, last, refused, { txid: cursor.txid, seq: cursor.seq }).catch((err) => deps.logger.warn({ err, peer: peer.id }, 'ack publish failed'));
    await Promise.all([advanceCursor(deps.db, peer.id, last), ack]);
    out.cursor = { txid: last.txid, seq: last.seq };
    if (!more) {
      out.caughtUp = true;
      return out;
    }
    if (Date.now() - started > budgetMs) return out;
  }
}

/** Rows dead-lettered at push time, by class: the refusal rate the alerts watch. */
export function countRefusedRows(metrics: Pick<Metrics, 'pushRefusedRows'>, peerId: string, dead: Array<{ failureClass: string }>): void {
  const byClass = new Map<string, number>();
  for (const d of dead) byClass.set(d.failureClass, (byClass.get(d.failureClass) ?? 0) + 1);
  for (const [cls, n] of byClass) metrics.pushRefusedRows.inc({ peer: peerId, class: cls }, n);
}

/** A batch sent, and whether the peer refused its first request as a whole (and why). */
export interface BatchOutcome {
  refused: Refusal[];
  wholeRefusal: string | null;
}

/** What a batch tells the refusal breaker (see BatchVerdict). */
export function verdictOf(items: Item[], outcome: BatchOutcome): BatchVerdict {
  if (outcome.refused.length < items.length) return 'accepted';
  return outcome.wholeRefusal !== null && items.length > 1 ? 'refused_whole' : 'neutral';
}

/**
 * One batch under the peer's refusal breaker: split mode normally, one unsplit request
 * while it is open (a probe is a normal split attempt). The verdict goes back to the breaker.
 * Transient, throttle and unenrolled failures still throw, whatever the mode.
 */
export async function sendThroughBreaker(deps: Pick<PusherDeps, 'client' | 'selfId' | 'metrics' | 'breaker'>, peer: PeerConfig, items: Item[], mode?: BreakerMode, opts: { mayOpen?: boolean } = {}): Promise<Refusal[]> {
  const m = mode ?? (deps.breaker ? await deps.breaker.mode(peer.id) : 'split');
  const outcome = await sendBatch(deps, peer, items, { split: m !== 'whole' });
  let verdict = verdictOf(items, outcome);
  // A DLQ replay resends rows the peer refused before: its refusals say nothing new about
  // live batches, so they never open the breaker (an accepted row still closes it).
  if (verdict === 'refused_whole' && opts.mayOpen === false && m !== 'probe') verdict = 'neutral';
  if (deps.breaker) await deps.breaker.record(peer.id, verdict, outcome.wholeRefusal ?? '');
  return outcome.refused;
}

/**
 * Sends items; a batch refused as a whole (400/413/422, or an upstream `skipped` count
 * without per-row results) is split in halves until the culprits stand alone, so one
 * poison row never holds back the rest. Returns the rows to dead-letter.
 */
export async function sendIsolating(deps: Pick<PusherDeps, 'client' | 'selfId' | 'metrics'>, peer: PeerConfig, items: Item[]): Promise<Refusal[]> {
  return (await sendBatch(deps, peer, items, { split: true })).refused;
}

/**
 * sendIsolating, and with `split: false` (refusal breaker open) a batch the peer refuses
 * as a whole is not bisected: every row is dead-lettered with the peer's reason. An
 * upstream answer counting fewer rows not applied than sent still splits (some rows were
 * taken, and only splitting tells which).
 */
export async function sendBatch(deps: Pick<PusherDeps, 'client' | 'selfId' | 'metrics'>, peer: PeerConfig, items: Item[], opts: { split: boolean }): Promise<BatchOutcome> {
  const letter = (item: Item, failureClass: Refusal['failureClass'], error: string): Refusal => ({ item, failureClass, error });
  const unsplit = (failureClass: Refusal['failureClass'], error: string): BatchOutcome => ({
    refused: items.map((i) => letter(i, failureClass, `${error} (refusal breaker open: the batch of ${items.length} rows was dead-lettered whole, not split)`)),
    wholeRefusal: error,
  });
  let res: PushResponse;
  try {
    res = await deps.client.push(peer, pushBodyOf(deps.selfId, peer.id, items));
    deps.metrics.pushOutcomes.inc({ peer: peer.id, class: 'ok' });
  } catch (err) {
    if (!(err instanceof PeerRequestError)) throw err;
    deps.metrics.pushOutcomes.inc({ peer: peer.id, class: err.failureClass });
    if (err.failureClass !== 'permanent') throw err;
    if (items.length === 1) return { refused: [letter(items[0]!, 'permanent', err.message)], wholeRefusal: err.message };
    if (!opts.split) return unsplit('permanent', err.message);
    return { refused: await splitAndSend(deps, peer, items), wholeRefusal: err.message };
  }
  if (Array.isArray(res.results)) {
    // A skipped result for an id wins over any other for it (a lane element naming the
    // memory, e.g. its archive event or a link, may be refused while its row applied).
    const byId = new Map<string, (typeof res.results)[number]>();
    for (const r of res.results) if (r && typeof r.id === 'string' && (!byId.has(r.id) || r.status === 'skipped')) byId.set(r.id, r);
    const dead: Refusal[] = [];
    for (const i of items) {
      const r = byId.get(itemId(i));
      if (!r) dead.push(letter(i, 'id_drift', 'peer reported no result for this id'));
      else if (r.status === 'skipped') dead.push(letter(i, 'skipped', r.reason ?? 'skipped by peer'));
    }
    return { refused: dead, wholeRefusal: null };
  }
  // Upstream receivers report only counters: a skipped row must be found by splitting.
  // Lane elements the peer does not apply (`unsupported_on_postgres`, e.g. archives on an
  // ai-memory postgres receiver) are no ack either: found and dead-lettered the same way.
  const notApplied = (typeof res.skipped === 'number' ? res.skipped : 0) + (typeof res.unsupported_on_postgres === 'number' ? res.unsupported_on_postgres : 0);
  if (notApplied > 0) {
    const why = res.skipped ? 'peer reported skipped' : 'peer reported unsupported_on_postgres';
    if (items.length === 1) return { refused: [letter(items[0]!, 'skipped', why)], wholeRefusal: why };
    if (!opts.split && notApplied >= items.length) return unsplit('skipped', `${why} (${notApplied} of ${items.length})`);
    return { refused: await splitAndSend(deps, peer, items), wholeRefusal: why };
  }
  return { refused: [], wholeRefusal: null };
}

async function splitAndSend(deps: Pick<PusherDeps, 'client' | 'selfId' | 'metrics'>, peer: PeerConfig, items: Item[]): Promise<Refusal[]> {
  const mid = Math.ceil(items.length / 2);
  const left = await sendIsolating(deps, peer, items.slice(0, mid));
  const right = await sendIsolating(deps, peer, items.slice(mid));
  return [...left, ...right];
}
