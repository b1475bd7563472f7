import { ApiError } from '../errors.js';
import { isValidId, validateMemory, type Memory } from '../memory/model.js';
import { normalizeTimestamp } from '../memory/time.js';
import { parseLinkRemoval, parseWireLink, type LinkRemoval, type MemoryLink } from '../memory/link.js';
import { isLinkLive, wireLink, type ArchiveEvent } from '../store/archive-links.js';
import { isArchived, type StoredLink } from '../store/memories.js';
import type { Tombstone } from '../store/replica.js';
import type { Item } from './feed-page.js';

export const LANE_MAX = 1000;
/**
 * Lanes of upstream's SyncPushBody (src/handlers/federation_receive.rs) memfed does not
 * apply (governance and namespace-standard state it does not hold). Their elements are
 * answered in `unsupported_on_postgres`, as upstream's postgres receiver does
 * (src/handlers/federation_signing_check.rs), never acked as applied.
 */
export const UNSUPPORTED_LANES = ['pendings', 'pending_decisions', 'namespace_meta', 'namespace_meta_clears'] as const;
export const CAPPED_LANES = ['memories', 'deletions', 'archives', 'restores', 'links', 'tombstones', 'archive_events', 'link_removals', ...UNSUPPORTED_LANES] as const;

export type RowStatus = 'applied' | 'noop' | 'skipped';
export interface RowResult {
  id: string;
  status: RowStatus;
  reason?: string;
}

/** What a receiver makes of a push body: valid rows to apply, refused rows to report. */
export interface ParsedPush {
  sender: string;
  recipient: string | undefined;
  dryRun: boolean;
  memories: Memory[];
  tombstones: Tombstone[];
  /** `archives` / `restores` (upstream, time = receipt) and memfed `archive_events` (with times). */
  archives: ArchiveEvent[];
  links: MemoryLink[];
  linkRemovals: LinkRemoval[];
  skipped: RowResult[];
  /** Elements of lanes memfed does not apply, per lane (answered as unsupported_on_postgres). */
  unsupported: Record<string, number>;
}

function refuse(message: string, code = 'INVALID_PUSH'): ApiError {
  return new ApiError(400, code, message);
}

/** Parses `POST /api/v1/sync/push`; lane caps as upstream, unknown lanes ignored. */
export function parsePushBody(body: unknown, nowIso: string, opts: { memoryMaxBytes?: number } = {}): ParsedPush {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw refuse('sync_push body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.sender_agent_id !== 'string' || b.sender_agent_id.length === 0) throw refuse('sender_agent_id is required');
  if (!Array.isArray(b.memories)) throw refuse('memories is required and must be an array');
  for (const lane of CAPPED_LANES) {
    const v = b[lane];
    if (v !== undefined && v !== null && !Array.isArray(v)) throw refuse(`${lane} must be an array`);
    if (Array.isArray(v) && v.length > LANE_MAX) throw new ApiError(400, 'LANE_TOO_LARGE', `sync_push limited to ${LANE_MAX} ${lane} per request`);
  }
  const skipped: RowResult[] = [];
  const memories: Memory[] = [];
  for (const raw of b.memories as unknown[]) {
    try {
      memories.push(validateMemory(raw, { ...(opts.memoryMaxBytes !== undefined ? { maxBytes: opts.memoryMaxBytes } : {}) }));
    } catch (err) {
      const id = typeof (raw as { id?: unknown })?.id === 'string' ? String((raw as { id: string }).id).slice(0, 128) : '';
      skipped.push({ id, status: 'skipped', reason: err instanceof Error ? err.message.slice(0, 300) : 'invalid' });
    }
  }
  const tombstones: Tombstone[] = [];
  const tombIds = new Set<string>();
  for (const raw of (b.tombstones as unknown[] | undefined) ?? []) {
    const t = raw as { id?: unknown; deleted_at?: unknown };
    const at = normalizeTimestamp(t?.deleted_at);
    if (!isValidId(t?.id) || at === null) {
      skipped.push({ id: typeof t?.id === 'string' ? t.id.slice(0, 128) : '', status: 'skipped', reason: 'tombstone needs a valid id and deleted_at' });
      continue;
    }
    tombstones.push({ id: t.id, deleted_at: at });
    tombIds.add(t.id);
  }
  // Upstream deletions carry no time: they mean "deleted now" unless a memfed tombstone says when.
  for (const id of (b.deletions as unknown[] | undefined) ?? []) {
    if (!isValidId(id)) {
      skipped.push({ id: typeof id === 'string' ? id.slice(0, 128) : '', status: 'skipped', reason: 'invalid id in deletions' });
      continue;
    }
    if (!tombIds.has(id)) tombstones.push({ id, deleted_at: nowIso, untimed: true });
  }
  const archives = parseArchiveLanes(b, nowIso, skipped);
  const links: MemoryLink[] = [];
  for (const raw of (b.links as unknown[] | undefined) ?? []) {
    const r = parseWireLink(raw);
    if ('problem' in r) skipped.push({ id: laneElementId(raw), status: 'skipped', reason: `link: ${r.problem}` });
    else links.push(r.link);
  }
  const linkRemovals: LinkRemoval[] = [];
  for (const raw of (b.link_removals as unknown[] | undefined) ?? []) {
    const r = parseLinkRemoval(raw);
    if ('problem' in r) skipped.push({ id: laneElementId(raw), status: 'skipped', reason: `link removal: ${r.problem}` });
    else linkRemovals.push(r.removal);
  }
  const unsupported: Record<string, number> = {};
  for (const lane of UNSUPPORTED_LANES) {
    const v = b[lane];
    if (Array.isArray(v) && v.length > 0) unsupported[lane] = v.length;
  }
  return {
    sender: b.sender_agent_id,
    recipient: typeof b.recipient === 'string' ? b.recipient : undefined,
    dryRun: b.dry_run === true,
    memories,
    tombstones,
    archives,
    links,
    linkRemovals,
    skipped,
    unsupported,
  };
}

/** The memory id a lane element names (source_id for links), for per-row results. */
function laneElementId(raw: unknown): string {
  const r = raw as { source_id?: unknown; id?: unknown } | null;
  const id = typeof r?.source_id === 'string' ? r.source_id : typeof r?.id === 'string' ? r.id : '';
  return id.slice(0, 128);
}

/**
 * Upstream `archives` / `restores` are bare ids (src/federation/sync.rs
 * broadcast_archive_quorum / broadcast_restore_quorum) and mean "now" unless a memfed
 * `archive_events` element says when (the same pattern as deletions and tombstones).
 */
function parseArchiveLanes(b: Record<string, unknown>, nowIso: string, skipped: RowResult[]): ArchiveEvent[] {
  const out: ArchiveEvent[] = [];
  const timed = new Set<string>();
  for (const raw of (b.archive_events as unknown[] | undefined) ?? []) {
    const e = raw as { id?: unknown; archived?: unknown; at?: unknown; reason?: unknown } | null;
    const at = normalizeTimestamp(e?.at);
    const reasonOk = e?.reason === undefined || e.reason === null || (typeof e.reason === 'string' && e.reason.length <= 512);
    if (!isValidId(e?.id) || typeof e?.archived !== 'boolean' || at === null || !reasonOk) {
      skipped.push({ id: laneElementId(raw), status: 'skipped', reason: 'archive event needs a valid id, archived (boolean), at and an optional reason string' });
      continue;
    }
    out.push({ id: e.id, archived: e.archived, at, ...(typeof e.reason === 'string' ? { reason: e.reason } : {}) });
    timed.add(e.id);
  }
  for (const [lane, archived] of [['archives', true], ['restores', false]] as const) {
    for (const id of (b[lane] as unknown[] | undefined) ?? []) {
      if (!isValidId(id)) {
        skipped.push({ id: typeof id === 'string' ? id.slice(0, 128) : '', status: 'skipped', reason: `invalid id in ${lane}` });
        continue;
      }
      if (!timed.has(id)) out.push({ id, archived, at: nowIso, untimed: true });
    }
  }
  return out;
}

/**
 * The outbound body: memories, upstream `deletions`, memfed `tombstones`, audience; and,
 * when there are any, the archive and link lanes: upstream `archives` / `restores` (ids
 * by the memory's effective state) and `links` (live links, upstream MemoryLink shape),
 * with memfed `archive_events` (the register with its time) and `link_removals`.
 */
export function buildPushBody(args: { sender: string; recipient: string; memories: Memory[]; tombstones: Tombstone[]; archives?: Array<{ event: ArchiveEvent; updatedAt: string }>; links?: StoredLink[] }) {
  const archives = args.archives ?? [];
  const links = args.links ?? [];
  const live = links.filter(isLinkLive);
  const removed = links.filter((l) => !isLinkLive(l));
  const effective = (a: { event: ArchiveEvent; updatedAt: string }) => isArchived({ archivedAt: a.event.archived ? a.event.at : null, changedAt: a.event.at }, a.updatedAt);
  return {
    sender_agent_id: args.sender,
    recipient: args.recipient,
    memories: args.memories,
    deletions: args.tombstones.map((t) => t.id),
    tombstones: args.tombstones,
    ...(archives.length > 0
      ? { archives: archives.filter(effective).map((a) => a.event.id), restores: archives.filter((a) => !effective(a)).map((a) => a.event.id), archive_events: archives.map((a) => a.event) }
      : {}),
    ...(live.length > 0 ? { links: live.map(wireLink) } : {}),
    ...(removed.length > 0 ? { link_removals: removed.map((l): LinkRemoval => ({ source_id: l.source_id, target_id: l.target_id, relation: l.relation, removed_at: l.removed_at! })) } : {}),
  };
}

/** The push body for delivery items (pusher, DLQ replay). */
export function pushBodyOf(sender: string, recipient: string, items: Item[]) {
  const mems = items.flatMap((i) => (i.kind === 'memory' ? [i] : []));
  return buildPushBody({
    sender,
    recipient,
    memories: mems.map((i) => i.memory),
    tombstones: items.flatMap((i) => (i.kind === 'tombstone' ? [i.tombstone] : [])),
    archives: mems.flatMap((i) => (i.archive ? [{ event: i.archive, updatedAt: i.memory.updated_at }] : [])),
    links: mems.flatMap((i) => i.links ?? []),
  });
}

export interface PushResponse {
  applied?: number;
  deleted?: number;
  noop?: number;
  skipped?: number;
  /** Upstream's count of lane elements the receiver does not apply: not an ack. */
  unsupported_on_postgres?: number;
  results?: RowResult[];
  receiver_agent_id?: string;
}
