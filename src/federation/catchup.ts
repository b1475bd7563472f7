import type { PeerConfig } from '../config.js';
import type { Db, Tx } from '../db/client.js';
import type { Logger } from '../logger.js';
import { isValidId, type Memory } from '../memory/model.js';
import { formatTimestamp, nowMicros, parseTimestamp } from '../memory/time.js';
import type { Metrics } from '../metrics.js';
import { recordRefusals, type CatchupRefusal } from '../store/catchup-refusals.js';
import { FEED_START, decodeCursor, encodeCursor } from '../store/feed.js';
import type { Tombstone } from '../store/replica.js';
import { SNAPSHOT_STARTING, WatermarkMoved, advanceSnapshot, advanceWatermark, beginSnapshot, getWatermark, recordPullError, recordPullSuccess, type Watermark } from '../store/watermarks.js';
import type { AdmissionRefusal } from './admission.js';
import type { AuditRecorder } from '../audit/events.js';
import type { Policy } from '../governance.js';
import { PeerRequestError, type PeerClient } from './client.js';
import { applyFromPeer } from './receive.js';
import { parsePushBody } from './wire.js';
import { NOTHING_PREPARED, judge, judgeServed, prepareRows, servedId, type PreparedRows } from './served-rows.js';
import { now } from '../clock.js';

/** The largest `limit` the since form allows (docs/wire.md). */
const SINCE_LIMIT_MAX = 10_000;

/**
 * Rows a catch-up asks for per page. Each page costs a request, a transaction and the
 * watermark write, so fewer larger pages catch up faster (docs/performance.md, Catch-up);
 * the serving node still ends a page at 4 MiB, and a page larger than this node accepts
 * is asked for again with a quarter of the rows.
 */
export const CATCHUP_PAGE_LIMIT = 2000;

export interface CatchupDeps {
  db: Db;
  client: PeerClient;
  logger: Logger;
  metrics: Metrics;
  pageLimit: number;
  policy: Policy | null;
  audit: AuditRecorder;
  clockSkewMs: number;
  /** TOMBSTONE_GRACE_MS (src/federation/receive.ts). */
  tombstoneGraceMs?: number;
  /** MEMORY_MAX_BYTES: a served row over it is refused for good (recorded and passed). */
  memoryMaxBytes?: number;
}

export interface PullResult {
  mode: 'cursor' | 'since';
  pages: number;
  applied: number;
  caughtUp: boolean;
  /** Where the run stopped because a row or page could not be applied for now (retried next tick). */
  failedRow?: { id: string; reason: string };
}

/** A fetched page and the work on its rows already done (served-rows.ts). */
interface Fetched {
  page: SincePage;
  prepared: PreparedRows;
}

interface SincePage {
  count?: number;
  memories?: unknown[];
  latest_updated_at?: string | null;
  // memfed extras
  tombstones?: Tombstone[];
  archive_events?: unknown[];
  links?: unknown[];
  link_removals?: unknown[];
  entries?: Array<{ id: string; cursor: string }>;
  next_cursor?: string;
  has_more?: boolean;
  remaining?: number;
}

/**
 * Pulls what the peer has after our watermark and applies it with the same LWW apply as
 * pushes, storing the new watermark in the same transaction. Two kinds of failure:
 * - a row refused for good (it does not validate; admission refuses it: a future
 *   timestamp, governance) is recorded in catchup_refusals in that same transaction and
 *   passed, so one bad row never wedges the peer's catch-up (re-apply: `memfed catchup
 *   refusals reapply`);
 * - anything else (the database down, a conflict, a row missing from a cursor page) halts
 *   the watermark where it was: the run stops and the next tick starts there again.
 */
export async function pullFromPeer(deps: CatchupDeps, peer: PeerConfig, budgetMs: number): Promise<PullResult> {
  const started = Date.now();
  const out: PullResult = { mode: 'cursor', pages: 0, applied: 0, caughtUp: false };
  let limit = deps.pageLimit;
  // The next page, asked for while this one is applied. It is used only if the loop then
  // asks with exactly the same parameters (the watermark moved where the page said it
  // would); otherwise it is dropped. Pages are still applied one after another, in order.
  // The look-ahead's rows are judged and encoded when it arrives (prepared), while the
  // current page is still in the database.
  let ahead: { key: string; fetched: Promise<Fetched> } | null = null;
  const request = (params: Record<string, string>): Promise<Fetched> => deps.client.since(peer, params).then((p) => ({ page: p as SincePage, prepared: prepared(deps, peer, p) }));
  const fetchPage = (params: Record<string, string>): Promise<Fetched> => {
    const key = JSON.stringify(params);
    const fetched = ahead?.key === key ? ahead.fetched : request(params);
    ahead = null;
    return fetched;
  };
  for (;;) {
    const wm = await getWatermark(deps.db, peer.id);
    if (wm.snapshotCursor) {
      // A snapshot bootstrap in progress: its pages first, then the feed after its position.
      let step: PageStep;
      try {
        step = await applySnapshotPage(deps, peer, wm, limit);
      } catch (err) {
        if (err instanceof PeerRequestError && err.tooLarge && limit > 1) {
          limit = Math.max(1, Math.floor(limit / 4));
          continue;
        }
        throw err;
      }
      out.pages++;
      out.applied += step.applied;
      if (step.failedRow) {
        out.failedRow = step.failedRow;
        return out;
      }
      if (Date.now() - started > budgetMs) {
        deps.metrics.catchupPulls.inc({ peer: peer.id, outcome: 'ok' });
        return out;
      }
      continue;
    }
    // memfed peers answer the cursor form; an ai-memory peer ignores `cursor` and answers
    // the since form, which is how a first pull tells them apart.
    const useSince = wm.since !== null && wm.cursor === null;
    let page: SincePage;
    let rows: PreparedRows;
    try {
      ({ page, prepared: rows } = await fetchPage(useSince ? { since: wm.since!, limit: String(limit) } : { cursor: wm.cursor ?? encodeCursor(FEED_START), limit: String(limit) }));
    } catch (err) {
      if (!useSince && err instanceof PeerRequestError && err.status === 410 && err.code === 'RESYNC_REQUIRED') {
        // The peer pruned its feed past our cursor: nothing after it can be read from the
        // feed any more. Bootstrap from a snapshot, then follow the feed from its position.
        await beginSnapshot(deps.db, peer.id, snapshotFrom(wm));
        deps.metrics.snapshotBootstraps.inc({ peer: peer.id, direction: 'pull', outcome: 'started' });
        deps.logger.warn({ peer: peer.id, cursor: wm.cursor }, "the peer's feed is pruned past our cursor (resync_required): bootstrapping from its snapshot");
        continue;
      }
      // A page of large memories can exceed what we accept: ask for fewer rows, down to one.
      if (err instanceof PeerRequestError && err.tooLarge && limit > 1) {
        limit = Math.max(1, Math.floor(limit / 4));
        continue;
      }
      throw err;
    }
    out.pages++;
    if (typeof page.next_cursor !== 'string' && Array.isArray(page.memories) && page.memories.length >= limit) {
      const ts = (page.memories[0] as { updated_at?: unknown })?.updated_at;
      if (page.memories.every((m) => (m as { updated_at?: unknown })?.updated_at === ts)) {
        // A full since page of one timestamp cannot be paged past without skipping rows:
        // ask once for the upstream maximum; beyond it only pushes can deliver the rest.
        if (limit < SINCE_LIMIT_MAX) {
          limit = SINCE_LIMIT_MAX;
          continue;
        }
        deps.metrics.catchupPulls.inc({ peer: peer.id, outcome: 'boundary_skip' });
        deps.logger.warn({ peer: peer.id, updated_at: ts, rows: page.memories.length }, 'more rows share one updated_at than a since page holds; the rest can only arrive by push');
      }
    }
    out.mode = typeof page.next_cursor === 'string' ? 'cursor' : 'since';
    const next = Date.now() - started <= budgetMs ? predictedNext(page, limit, wm.since, deps.clockSkewMs) : null;
    if (next) {
      const p = request(next);
      p.catch(() => {}); // a dropped look-ahead's failure is nobody's; a used one's is rethrown where awaited
      ahead = { key: JSON.stringify(next), fetched: p };
    }
    let step: PageStep;
    try {
      step = out.mode === 'cursor' ? await applyCursorPage(deps, peer, wm, page, rows) : await applySincePage(deps, peer, wm, page, limit, rows);
    } catch (err) {
      if (err instanceof WatermarkMoved) throw err;
      // A transient failure (connection, serialization, lock, anything the database threw):
      // the page's transaction rolled back, the watermark stays at the page's start.
      const first = Array.isArray(page.memories) && page.memories.length > 0 ? servedId(page.memories[0]) : 'page';
      step = { applied: 0, caughtUp: false, failedRow: { id: first, reason: `page apply failed (transient; retried next tick): ${rootCause(err)}` } };
      await recordPullError(deps.db, peer.id, haltMessage(step.failedRow!)).catch(() => {
        throw err;
      });
    }
    out.applied += step.applied;
    if (step.failedRow) {
      out.failedRow = step.failedRow;
      deps.metrics.catchupPulls.inc({ peer: peer.id, outcome: 'apply_failed' });
      deps.logger.error({ peer: peer.id, row: step.failedRow.id, reason: step.failedRow.reason }, 'catch-up halted at a row that failed to apply; retrying next tick');
      return out;
    }
    if (step.caughtUp) {
      out.caughtUp = true;
      deps.metrics.catchupPulls.inc({ peer: peer.id, outcome: 'ok' });
      return out;
    }
    if (Date.now() - started > budgetMs) {
      deps.metrics.catchupPulls.inc({ peer: peer.id, outcome: 'ok' });
      return out;
    }
  }
}

/** What the next request will be if this full page applies as served (null: likely the last page). */
function predictedNext(page: SincePage, limit: number, prev: string | null, clockSkewMs: number): Record<string, string> | null {
  if (typeof page.next_cursor === 'string') {
    const more = typeof page.has_more === 'boolean' ? page.has_more : Array.isArray(page.entries) && page.entries.length >= limit;
    return more ? { cursor: page.next_cursor, limit: String(limit) } : null;
  }
  const rows = Array.isArray(page.memories) ? page.memories : [];
  if (rows.length < limit) return null;
  const since = sinceAfter(prev, rows, true, nowMicros() + clockSkewMs * 1000);
  return since !== null && since !== prev ? { since, limit: String(limit) } : null;
}

interface PageStep {
  applied: number;
  caughtUp: boolean;
  failedRow?: { id: string; reason: string };
}

/** A page's rows prepared ahead; nothing (each row is then judged at apply, as before) if that fails. */
function prepared(deps: CatchupDeps, peer: PeerConfig, page: unknown): PreparedRows {
  try {
    return prepareRows(peer.id, (page as SincePage | null)?.memories, deps.memoryMaxBytes);
  } catch {
    return NOTHING_PREPARED;
  }
}

/**
 * Records, in the applying transaction, what the page refused (validation, and admission:
 * future timestamps, governance) and then moves the watermark past it: a crash can never
 * leave the watermark past a row that is not recorded.
 */
async function recordInTransaction(
  peer: PeerConfig,
  tx: Tx,
  invalid: CatchupRefusal[],
  admission: AdmissionRefusal[],
  served: (id: string, lane: 'memories' | 'tombstones') => unknown,
): Promise<CatchupRefusal[]> {
  const all = [...invalid, ...admission.map((r): CatchupRefusal => ({ peerId: peer.id, memoryId: r.id, lane: r.lane, row: served(r.id, r.lane), code: r.code, reason: r.reason }))];
  return recordRefusals(tx, all);
}

/** After commit: the metric, a log line and one audit event for the refusals recorded for the first time. */
function reportRefusals(deps: CatchupDeps, peer: PeerConfig, fresh: CatchupRefusal[]): void {
  if (fresh.length === 0) return;
  for (const r of fresh) deps.metrics.catchupRefusals.inc({ peer: peer.id, reason: r.code });
  deps.logger.warn({ peer: peer.id, rows: fresh.slice(0, 20).map((r) => ({ id: r.memoryId, code: r.code, reason: r.reason })), count: fresh.length }, 'catch-up refused rows for good: recorded (memfed catchup refusals list) and passed');
  deps.audit.record({ kind: 'catchup.refused', actor: peer.id, details: { peer: peer.id, rows: fresh.slice(0, 100).map((r) => ({ id: r.memoryId, lane: r.lane, code: r.code, reason: r.reason })), count: fresh.length } });
}

async function applyCursorPage(deps: CatchupDeps, peer: PeerConfig, wm: Watermark, page: SincePage, rows: PreparedRows): Promise<PageStep> {
  const entries = Array.isArray(page.entries) ? page.entries : [];
  const byId = new Map<string, unknown>();
  for (const m of Array.isArray(page.memories) ? page.memories : []) if (m && typeof (m as { id?: unknown }).id === 'string') byId.set((m as { id: string }).id, m);
  const tombs = new Map((Array.isArray(page.tombstones) ? page.tombstones : []).map((t) => [t.id, t]));
  // Walk entries in feed order. A row that does not validate is refused for good (recorded,
  // passed); a malformed entry or a row missing from the page halts the watermark there.
  const memories: Memory[] = [];
  const tombstones: Tombstone[] = [];
  const invalid: CatchupRefusal[] = [];
  let cursor = page.next_cursor!;
  let failedRow: PageStep['failedRow'];
  for (const [i, e] of entries.entries()) {
    const before = () => (i === 0 ? (wm.cursor ?? encodeCursor(FEED_START)) : entries[i - 1]!.cursor);
    if (!e || typeof e.id !== 'string' || typeof e.cursor !== 'string' || !isValidId(e.id)) {
      failedRow = { id: typeof e?.id === 'string' ? e.id.slice(0, 128) : `#${i}`, reason: 'malformed entry in the page' };
      cursor = before();
      break;
    }
    const t = tombs.get(e.id);
    if (t && parseTimestamp(t.deleted_at) !== null) {
      tombstones.push({ id: t.id, deleted_at: formatTimestamp(parseTimestamp(t.deleted_at)!) });
      continue;
    }
    if (!byId.has(e.id)) {
      failedRow = { id: e.id, reason: 'row missing from the page' };
      cursor = before();
      break;
    }
    const j = judgeServed(rows, peer.id, byId.get(e.id), deps.memoryMaxBytes);
    if ('memory' in j) memories.push(j.memory);
    else invalid.push({ ...j.refusal, memoryId: e.id });
  }
  const lanes = pageLanes(page, new Set([...memories.map((m) => m.id), ...tombstones.map((t) => t.id)]));
  const lastRowAt = memories.reduce<string | null>((acc, m) => (acc === null || m.updated_at > acc ? m.updated_at : acc), null);
  const caughtUp = !failedRow && page.has_more !== true;
  const lagRows = caughtUp ? 0 : typeof page.remaining === 'number' ? page.remaining : entries.length;
  let fresh: CatchupRefusal[] = [];
  const r = await applyFromPeer(deps, peer.id, 'catchup', { memories, tombstones, ...lanes }, {
    inTransaction: async (tx, refused) => {
      fresh = await recordInTransaction(peer, tx, invalid, refused, (id, lane) => (lane === 'tombstones' ? tombs.get(id) : byId.get(id)));
      await advanceWatermark(tx, peer.id, wm, { cursor, since: null, lagRows, lastRowAt, ...(failedRow ? { halted: haltMessage(failedRow) } : {}) });
    },
    encoded: rows.encoded,
  });
  if (invalid.length > 0) deps.metrics.appliedRows.inc({ status: 'skipped', via: 'catchup' }, invalid.length);
  reportRefusals(deps, peer, fresh);
  return { applied: r.applied.length + r.deleted.length, caughtUp, ...(failedRow ? { failedRow } : {}) };
}

const snapshotFrom = (wm: Watermark) => ({ cursor: wm.cursor, snapshotToken: wm.snapshotToken ?? null, snapshotCursor: wm.snapshotCursor ?? null });

interface SnapshotPage {
  memories?: unknown[];
  tombstones?: Tombstone[];
  archive_events?: unknown[];
  links?: unknown[];
  link_removals?: unknown[];
  snapshot_cursor?: unknown;
  next_token?: unknown;
  has_more?: unknown;
}

/**
 * One page of the peer's snapshot, applied with the normal LWW/tombstone apply; the
 * bootstrap state moves in the same transaction (next token, or, after the last page,
 * the feed cursor set to the snapshot's position). A snapshot the peer no longer holds
 * (idle too long, replaced) starts again; a page that does not make sense halts here.
 */
async function applySnapshotPage(deps: CatchupDeps, peer: PeerConfig, wm: Watermark, limit: number): Promise<PageStep> {
  const from = snapshotFrom(wm);
  let page: SnapshotPage;
  try {
    page = (await deps.client.snapshot(peer, { ...(from.snapshotToken ? { token: from.snapshotToken } : {}), limit: String(limit) })) as SnapshotPage;
  } catch (err) {
    if (err instanceof PeerRequestError && err.status === 410 && err.code === 'SNAPSHOT_EXPIRED') {
      await beginSnapshot(deps.db, peer.id, from);
      deps.metrics.snapshotBootstraps.inc({ peer: peer.id, direction: 'pull', outcome: 'restarted' });
      deps.logger.warn({ peer: peer.id }, 'the peer no longer holds our snapshot (idle too long or replaced): starting the bootstrap again');
      return { applied: 0, caughtUp: false };
    }
    throw err;
  }
  const position = typeof page.snapshot_cursor === 'string' ? decodeCursor(page.snapshot_cursor) : null;
  const more = page.has_more === true;
  const bad = (reason: string): PageStep => ({ applied: 0, caughtUp: false, failedRow: { id: 'snapshot', reason } });
  if (!position) return bad('snapshot page without a valid snapshot_cursor');
  if (from.snapshotCursor !== SNAPSHOT_STARTING && from.snapshotCursor !== page.snapshot_cursor) return bad('snapshot page of another snapshot');
  if (more && (typeof page.next_token !== 'string' || page.next_token === '' || page.next_token === from.snapshotToken)) return bad('snapshot page with more to come but no new next_token');
  const memories: Memory[] = [];
  const invalid: CatchupRefusal[] = [];
  const served = new Map<string, unknown>();
  for (const raw of Array.isArray(page.memories) ? page.memories : []) {
    const j = judge(peer.id, raw, deps.memoryMaxBytes);
    if ('memory' in j) {
      memories.push(j.memory);
      served.set(j.memory.id, raw);
    } else invalid.push(j.refusal);
  }
  const tombstones: Tombstone[] = [];
  for (const t of Array.isArray(page.tombstones) ? page.tombstones : []) {
    const at = t && typeof t === 'object' && typeof t.deleted_at === 'string' ? parseTimestamp(t.deleted_at) : null;
    if (at !== null && isValidId(t.id)) tombstones.push({ id: t.id, deleted_at: formatTimestamp(at) });
    else invalid.push({ peerId: peer.id, memoryId: servedId(t), lane: 'tombstones', row: t, code: 'VALIDATION', reason: 'invalid tombstone in a snapshot page' });
  }
  const tombs = new Map(tombstones.map((t) => [t.id, t]));
  const lanes = pageLanes(page, new Set([...memories.map((m) => m.id), ...tombstones.map((t) => t.id)]));
  const lastRowAt = memories.reduce<string | null>((acc, m) => (acc === null || m.updated_at > acc ? m.updated_at : acc), null);
  const cursor = encodeCursor(position);
  let fresh: CatchupRefusal[] = [];
  const r = await applyFromPeer(deps, peer.id, 'snapshot', { memories, tombstones, ...lanes }, {
    inTransaction: async (tx, refused) => {
      fresh = await recordInTransaction(peer, tx, invalid, refused, (id, lane) => (lane === 'tombstones' ? tombs.get(id) : served.get(id)));
      await advanceSnapshot(tx, peer.id, from, more ? { next: { token: page.next_token as string, snapshotCursor: cursor } } : { done: cursor }, lastRowAt);
    },
  });
  if (invalid.length > 0) deps.metrics.appliedRows.inc({ status: 'skipped', via: 'snapshot' }, invalid.length);
  reportRefusals(deps, peer, fresh);
  const rows = memories.length + tombstones.length;
  deps.metrics.snapshotPages.inc({ peer: peer.id, direction: 'applied' });
  deps.metrics.snapshotRows.inc({ peer: peer.id, direction: 'applied' }, rows);
  if (!more) {
    deps.metrics.snapshotBootstraps.inc({ peer: peer.id, direction: 'pull', outcome: 'completed' });
    deps.logger.info({ peer: peer.id, cursor }, 'snapshot bootstrap from the peer complete: following its feed from the snapshot position');
    deps.audit.record({ kind: 'feed.bootstrap', actor: peer.id, details: { peer: peer.id, direction: 'pull', snapshot_cursor: cursor, previous_cursor: wm.cursor } });
  }
  return { applied: r.applied.length + r.deleted.length, caughtUp: false };
}

/** A served `updated_at` the since watermark may take: an RFC 3339 string not beyond the horizon. */
const watermarkable = (v: unknown, horizon: number): v is string => typeof v === 'string' && (parseTimestamp(v) ?? Infinity) <= horizon;

/** The `since` watermark after a since page (`full`: it held `limit` rows); `horizon`: now plus the allowed skew. */
function sinceAfter(prev: string | null, rows: unknown[], full: boolean, horizon: number): string | null {
  // The watermark is the peer's own `updated_at` string, exactly as served, and the maximum
  // is taken as upstream takes it: by string comparison (upstream federation catch-up
  // poller: `advance_catchup_watermark`, `row_ts > cur`; its sqlite store answers
  // `updated_at > since` on the stored text). A normalised copy (microseconds) would sort
  // below a nanosecond original, so that row would be served again on every tick.
  // Refused rows count too (they are recorded), except a timestamp from the future:
  // the watermark never jumps ahead of the clock (the refused row is served, and
  // counted as seen again, until it is no longer in the future or is fixed).
  const stamps = rows.map((m) => (m as { updated_at?: unknown } | null)?.updated_at).filter((v): v is string => watermarkable(v, horizon));
  const max = stamps.reduce<string | null>((acc, v) => (acc === null || v > acc ? v : acc), null);
  let since = prev;
  if (max !== null) {
    // Upstream's `since` is exclusive: rows sharing the boundary timestamp beyond a full
    // page would be skipped for ever. Re-ask from just before the boundary (re-applying
    // those rows is a no-op), unless the whole page shares one timestamp (then only
    // moving on makes progress: the upstream server's own limit).
    const allSame = stamps.length === rows.length && stamps.every((v) => v === max);
    since = full && !allSame ? formatTimestamp(parseTimestamp(max)! - 1) : max;
    // Never backwards (a re-ask point below a watermark already taken gains nothing).
    if (prev !== null && !(since > prev)) since = prev;
  }
  return since;
}

async function applySincePage(deps: CatchupDeps, peer: PeerConfig, wm: Watermark, page: SincePage, limit: number, prepared: PreparedRows): Promise<PageStep> {
  const rows = Array.isArray(page.memories) ? page.memories : [];
  const valid: Memory[] = [];
  const invalid: CatchupRefusal[] = [];
  const served = new Map<string, unknown>();
  for (const raw of rows) {
    const j = judgeServed(prepared, peer.id, raw, deps.memoryMaxBytes);
    if ('memory' in j) {
      valid.push(j.memory);
      served.set(j.memory.id, raw);
    } else invalid.push(j.refusal);
  }
  const full = rows.length >= limit;
  const since = sinceAfter(wm.since, rows, full, nowMicros() + deps.clockSkewMs * 1000);
  const caughtUp = !full;
  const lastRowAt = valid.reduce<string | null>((acc, m) => (acc === null || m.updated_at > acc ? m.updated_at : acc), null);
  let fresh: CatchupRefusal[] = [];
  const r = await applyFromPeer(deps, peer.id, 'catchup', { memories: valid, tombstones: [] }, {
    inTransaction: async (tx, refused) => {
      fresh = await recordInTransaction(peer, tx, invalid, refused, (id) => served.get(id));
      await advanceWatermark(tx, peer.id, wm, { cursor: null, since, lagRows: caughtUp ? 0 : rows.length, lastRowAt });
    },
    encoded: prepared.encoded,
  });
  if (invalid.length > 0) deps.metrics.appliedRows.inc({ status: 'skipped', via: 'catchup' }, invalid.length);
  reportRefusals(deps, peer, fresh);
  if (!caughtUp && since === wm.since) {
    // No progress possible (the page was all one timestamp we had already passed).
    await recordPullSuccess(deps.db, peer.id, 0);
    return { applied: r.applied.length, caughtUp: true };
  }
  return { applied: r.applied.length, caughtUp };
}

/** The database's own words (the query builder wraps them in a message holding the whole query). */
function rootCause(err: unknown): string {
  let e = err as { message?: string; code?: unknown; cause?: unknown };
  while (e.cause && typeof e.cause === 'object') e = e.cause as typeof e;
  const code = typeof e.code === 'string' ? ` (${e.code})` : '';
  return `${String(e.message ?? e).slice(0, 300)}${code}`;
}

/**
 * The archive events and links of a cursor page that belong to the entries taken (a page
 * carries each memory's archive register and outgoing links next to it), parsed as a push
 * body's lanes are.
 */
function pageLanes(page: Pick<SincePage, 'archive_events' | 'links' | 'link_removals'>, taken: Set<string>) {
  const parsed = parsePushBody({ sender_agent_id: 'page', memories: [], archive_events: page.archive_events ?? [], links: page.links ?? [], link_removals: page.link_removals ?? [] }, formatTimestamp(now() * 1000));
  return {
    archives: parsed.archives.filter((e) => taken.has(e.id)),
    links: parsed.links.filter((l) => taken.has(l.source_id)),
    linkRemovals: parsed.linkRemovals.filter((l) => taken.has(l.source_id)),
  };
}

const haltMessage = (f: { id: string; reason: string }) => `row ${f.id} failed to apply: ${f.reason}`;
