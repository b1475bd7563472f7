import type { PeerConfig } from '../config.js';
import type { Db } from '../db/client.js';
import type { Logger } from '../logger.js';
import { isValidId, validateMemory, type Memory } from '../memory/model.js';
import { formatTimestamp, parseTimestamp } from '../memory/time.js';
import type { Metrics } from '../metrics.js';
import { FEED_START, encodeCursor } from '../store/feed.js';
import type { Tombstone } from '../store/replica.js';
import { advanceWatermark, getWatermark, recordPullSuccess, type Watermark } from '../store/watermarks.js';
import type { AuditRecorder } from '../audit/events.js';
import type { Policy } from '../governance.js';
import { PeerRequestError, type PeerClient } from './client.js';
import { applyFromPeer } from './receive.js';
import { parsePushBody } from './wire.js';

/** The largest `limit` the since form allows (docs/wire.md). */
const SINCE_LIMIT_MAX = 10_000;

export interface CatchupDeps {
  db: Db;
  client: PeerClient;
  logger: Logger;
  metrics: Metrics;
  pageLimit: number;
  policy: Policy | null;
  audit: AuditRecorder;
  clockSkewMs: number;
}

export interface PullResult {
  mode: 'cursor' | 'since';
  pages: number;
  applied: number;
  caughtUp: boolean;
  /** The row the run stopped at because it could not be applied (retried next tick). */
  failedRow?: { id: string; reason: string };
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
 * pushes, storing the new watermark in the same transaction. The watermark never passes
 * a row that failed to apply: the run stops there and the next tick starts at that row.
 */
export async function pullFromPeer(deps: CatchupDeps, peer: PeerConfig, budgetMs: number): Promise<PullResult> {
  const started = Date.now();
  const out: PullResult = { mode: 'cursor', pages: 0, applied: 0, caughtUp: false };
  let limit = deps.pageLimit;
  for (;;) {
    const wm = await getWatermark(deps.db, peer.id);
    // memfed peers answer the cursor form; an ai-memory peer ignores `cursor` and answers
    // the since form, which is how a first pull tells them apart.
    const useSince = wm.since !== null && wm.cursor === null;
    let page: SincePage;
    try {
      page = (await deps.client.since(peer, useSince ? { since: wm.since!, limit: String(limit) } : { cursor: wm.cursor ?? encodeCursor(FEED_START), limit: String(limit) })) as SincePage;
    } catch (err) {
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
    const step = typeof page.next_cursor === 'string' ? await applyCursorPage(deps, peer, wm, page) : await applySincePage(deps, peer, wm, page, limit);
    out.mode = typeof page.next_cursor === 'string' ? 'cursor' : 'since';
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

interface PageStep {
  applied: number;
  caughtUp: boolean;
  failedRow?: { id: string; reason: string };
}

/** The first row (in page order) that does not validate, and the valid rows before it. */
function validPrefix(rows: unknown[]): { valid: Memory[]; failed?: { index: number; id: string; reason: string } } {
  const valid: Memory[] = [];
  for (const [index, raw] of rows.entries()) {
    try {
      valid.push(validateMemory(raw));
    } catch (err) {
      const id = typeof (raw as { id?: unknown })?.id === 'string' ? String((raw as { id: string }).id).slice(0, 128) : `#${index}`;
      return { valid, failed: { index, id, reason: (err as Error).message.slice(0, 300) } };
    }
  }
  return { valid };
}

async function applyCursorPage(deps: CatchupDeps, peer: PeerConfig, wm: Watermark, page: SincePage): Promise<PageStep> {
  const entries = Array.isArray(page.entries) ? page.entries : [];
  const byId = new Map<string, unknown>();
  for (const m of Array.isArray(page.memories) ? page.memories : []) if (m && typeof (m as { id?: unknown }).id === 'string') byId.set((m as { id: string }).id, m);
  const tombs = new Map((Array.isArray(page.tombstones) ? page.tombstones : []).map((t) => [t.id, t]));
  // Walk entries in feed order; stop at the first whose row does not validate.
  const memories: Memory[] = [];
  const tombstones: Tombstone[] = [];
  let cursor = page.next_cursor!;
  let failedRow: PageStep['failedRow'];
  for (const [i, e] of entries.entries()) {
    if (!e || typeof e.id !== 'string' || typeof e.cursor !== 'string' || !isValidId(e.id)) {
      failedRow = { id: typeof e?.id === 'string' ? e.id.slice(0, 128) : `#${i}`, reason: 'malformed entry in the page' };
      cursor = i === 0 ? (wm.cursor ?? encodeCursor(FEED_START)) : entries[i - 1]!.cursor;
      break;
    }
    const t = tombs.get(e.id);
    if (t && parseTimestamp(t.deleted_at) !== null) {
      tombstones.push({ id: t.id, deleted_at: formatTimestamp(parseTimestamp(t.deleted_at)!) });
      continue;
    }
    const { valid, failed } = validPrefix([byId.get(e.id)]);
    if (failed) {
      failedRow = { id: e.id, reason: byId.has(e.id) ? failed.reason : 'row missing from the page' };
      cursor = i === 0 ? (wm.cursor ?? encodeCursor(FEED_START)) : entries[i - 1]!.cursor;
      break;
    }
    memories.push(...valid);
  }
  const lanes = pageLanes(page, new Set([...memories.map((m) => m.id), ...tombstones.map((t) => t.id)]));
  const lastRowAt = memories.reduce<string | null>((acc, m) => (acc === null || m.updated_at > acc ? m.updated_at : acc), null);
  const caughtUp = !failedRow && page.has_more !== true;
  const lagRows = caughtUp ? 0 : typeof page.remaining === 'number' ? page.remaining : entries.length;
  // Governance refusals are on purpose, not failures: they do not hold the watermark.
  const r = await applyFromPeer(deps, peer.id, 'catchup', { memories, tombstones, ...lanes }, {
    inTransaction: (tx) => advanceWatermark(tx, peer.id, wm, { cursor, since: null, lagRows, lastRowAt, ...(failedRow ? { halted: haltMessage(failedRow) } : {}) }),
  });
  return { applied: r.applied.length + r.deleted.length, caughtUp, ...(failedRow ? { failedRow } : {}) };
}

async function applySincePage(deps: CatchupDeps, peer: PeerConfig, wm: Watermark, page: SincePage, limit: number): Promise<PageStep> {
  const rows = Array.isArray(page.memories) ? page.memories : [];
  const { valid, failed } = validPrefix(rows);
  const full = rows.length >= limit;
  let since = wm.since;
  const last = valid.at(-1);
  if (last) {
    // Upstream's `since` is exclusive: rows sharing the boundary timestamp beyond a full
    // page would be skipped for ever. Re-ask from just before the boundary (re-applying
    // those rows is a no-op), unless the whole page shares one timestamp (then only
    // moving on makes progress: the upstream server's own limit).
    // After a failing row, always re-ask from before the boundary: the failing row may share it.
    const boundary = parseTimestamp(last.updated_at)!;
    const allSame = valid.every((m) => m.updated_at === last.updated_at);
    since = failed || (full && !allSame) ? formatTimestamp(boundary - 1) : last.updated_at;
  }
  const caughtUp = !failed && !full;
  const halted = failed ? haltMessage(failed) : undefined;
  const r = await applyFromPeer(deps, peer.id, 'catchup', { memories: valid, tombstones: [] }, {
    inTransaction: (tx) => advanceWatermark(tx, peer.id, wm, { cursor: null, since, lagRows: caughtUp ? 0 : rows.length, lastRowAt: last?.updated_at ?? null, ...(halted ? { halted } : {}) }),
  });
  if (!failed && !caughtUp && since === wm.since) {
    // No progress possible (the page was all one timestamp we had already passed).
    await recordPullSuccess(deps.db, peer.id, 0);
    return { applied: r.applied.length, caughtUp: true };
  }
  return { applied: r.applied.length, caughtUp, ...(failed ? { failedRow: { id: failed.id, reason: failed.reason } } : {}) };
}

/**
 * The archive events and links of a cursor page that belong to the entries taken (a page
 * carries each memory's archive register and outgoing links next to it), parsed as a push
 * body's lanes are.
 */
function pageLanes(page: SincePage, taken: Set<string>) {
  const parsed = parsePushBody({ sender_agent_id: 'page', memories: [], archive_events: page.archive_events ?? [], links: page.links ?? [], link_removals: page.link_removals ?? [] }, formatTimestamp(Date.now() * 1000));
  return {
    archives: parsed.archives.filter((e) => taken.has(e.id)),
    links: parsed.links.filter((l) => taken.has(l.source_id)),
    linkRemovals: parsed.linkRemovals.filter((l) => taken.has(l.source_id)),
  };
}

const haltMessage = (f: { id: string; reason: string }) => `row ${f.id} failed to apply: ${f.reason}`;
