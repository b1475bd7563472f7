import type { AuditRecorder } from '../audit/events.js';
import type { Db, Tx } from '../db/client.js';
import type { Policy } from '../governance.js';
import type { Memory } from '../memory/model.js';
import type { Metrics } from '../metrics.js';
import { linkKey, type LinkRemoval, type MemoryLink } from '../memory/link.js';
import type { ArchiveEvent } from '../store/archive-links.js';
import { applyReplicated, graceRefusals, type GraceRefusal, type LinkOutcome, type Tombstone } from '../store/replica.js';
import { BEYOND_TOMBSTONE_GRACE } from '../memory/expiry.js';
import { admitReplicated, beyondSkew, type AdmissionRefusal } from './admission.js';
import type { ParsedPush, RowResult } from './wire.js';

/** What applying rows from a peer needs (push receive and catch-up alike). */
export interface ReceiveDeps {
  db: Db;
  policy: Policy | null;
  metrics: Metrics;
  audit: AuditRecorder;
  clockSkewMs: number;
  /** TOMBSTONE_GRACE_MS (absent: the default, 30 days): rows newer than now - grace are never screened. */
  tombstoneGraceMs?: number;
}

export const DEFAULT_TOMBSTONE_GRACE_MS = 30 * 86_400_000;

/** A row the apply refused as possibly the old copy of a deleted memory whose tombstone was collected. */
const graceRefusal = (r: GraceRefusal): AdmissionRefusal => ({
  id: r.id,
  lane: r.lane,
  code: BEYOND_TOMBSTONE_GRACE,
  rule: 'tombstone_grace',
  reason: `${r.lane === 'memories' ? 'updated_at' : 'deleted_at'} ${r.at} is no newer than a tombstone this node collected, and nothing of ${r.id} is held here (it may be a copy of a deleted memory)`,
});

/** Rows from a peer: every lane memfed applies. */
export interface PeerRows {
  memories: Memory[];
  tombstones: Tombstone[];
  archives?: ArchiveEvent[];
  links?: MemoryLink[];
  linkRemovals?: LinkRemoval[];
}

export interface PeerApply {
  applied: string[];
  deleted: string[];
  noop: string[];
  archived: string[];
  restored: string[];
  archiveNoop: string[];
  links: LinkOutcome;
  refused: AdmissionRefusal[];
  /** Archive events and links refused for a time in the future (LWW would pin them). */
  refusedEvents: RowResult[];
  /** The rows admission let through (what was applied, or in a dry run would be). */
  admitted: Required<PeerRows>;
}

/** Archive events and links stamped beyond the allowed clock skew: refused, as memories are. */
function admitEvents(rows: PeerRows, clockSkewMs: number): { archives: ArchiveEvent[]; links: MemoryLink[]; linkRemovals: LinkRemoval[]; refused: RowResult[] } {
  const future = beyondSkew(clockSkewMs);
  const refused: RowResult[] = [];
  const timely = <T>(rows: T[], at: (r: T) => string, id: (r: T) => string) =>
    rows.filter((r) => {
      if (!future(at(r))) return true;
      refused.push({ id: id(r), status: 'skipped', reason: `FUTURE_TIMESTAMP: ${at(r)} is in the future` });
      return false;
    });
  return {
    archives: timely(rows.archives ?? [], (e) => e.at, (e) => e.id),
    links: timely(rows.links ?? [], (l) => l.created_at, (l) => l.source_id),
    linkRemovals: timely(rows.linkRemovals ?? [], (l) => l.removed_at, (l) => l.source_id),
    refused,
  };
}

/**
 * Rows from a peer, pushed or pulled: admission (no future timestamps, governance), then
 * the LWW apply (with `inTransaction`, e.g. the catch-up watermark, in the same
 * transaction), then the counters and audit events. A refused row is refused on purpose:
 * audited, counted, never dropped silently.
 */
export async function applyFromPeer(
  deps: ReceiveDeps,
  peerId: string,
  via: 'push' | 'catchup' | 'snapshot' | 'repair',
  rows: PeerRows,
  /**
   * `inTransaction` also gets admission's refusals (catch-up records them in the same
   * commit); `encoded`: recordset rows of some memories, encoded ahead (catch-up).
   */
  opts: { dryRun?: boolean; inTransaction?: (tx: Tx, refused: AdmissionRefusal[]) => Promise<void>; encoded?: ReadonlyMap<Memory, string> } = {},
): Promise<PeerApply> {
  const { refused, ...admittedRows } = await admitReplicated(deps.db, deps.policy, peerId, rows, deps.clockSkewMs);
  const { refused: refusedEvents, ...events } = admitEvents(rows, deps.clockSkewMs);
  const admitted = { ...admittedRows, ...events };
  if (refused.length > 0) {
    deps.metrics.appliedRows.inc({ status: 'skipped', via }, refused.length);
    deps.audit.record({ kind: 'governance.refused', actor: peerId, details: { via, rows: refused.slice(0, 100).map((r) => ({ id: r.id, code: r.code, rule: r.rule, lane: r.lane })), count: refused.length } });
  }
  if (refusedEvents.length > 0) deps.metrics.appliedRows.inc({ status: 'skipped', via }, refusedEvents.length);
  const none = { applied: [], deleted: [], noop: [], archived: [], restored: [], archiveNoop: [], links: { applied: [], noop: [], removed: [] } };
  // upstream src/handlers/federation_receive.rs: in a dry run every row that passes the checks counts as noop.
  // A snapshot bootstrap is exempt from the grace screen: its rows are the sender's current
  // state, copied to a node that is behind the retained feed (nothing there to resurrect).
  const guard = via === 'snapshot' ? undefined : { graceMs: deps.tombstoneGraceMs ?? DEFAULT_TOMBSTONE_GRACE_MS };
  if (opts.dryRun) {
    // The grace screen too, so a dry run answers as the real one would (nothing is counted).
    const beyond = guard ? await graceRefusals(deps.db, admitted, guard) : [];
    const out = new Set(beyond.map((r) => `${r.lane}:${r.id}`));
    refused.push(...beyond.map(graceRefusal));
    const noop = [...admitted.memories.filter((m) => !out.has(`memories:${m.id}`)).map((m) => m.id), ...admitted.tombstones.filter((t) => !out.has(`tombstones:${t.id}`)).map((t) => t.id), ...admitted.archives.map((e) => e.id), ...admitted.links.map((l) => l.source_id), ...admitted.linkRemovals.map((l) => l.source_id)];
    return { ...none, noop, refused, refusedEvents, admitted };
  }
  const inTx = opts.inTransaction;
  const out = await applyReplicated(deps.db, { ...admitted, originPeer: peerId, ...(opts.encoded ? { encoded: opts.encoded } : {}) }, inTx ? (tx, graceRefused) => inTx(tx, [...refused, ...graceRefused.map(graceRefusal)]) : undefined, guard);
  // Refused as beyond the grace horizon: answered and recorded like admission's refusals.
  if (out.refused.length > 0) {
    for (const r of out.refused) deps.metrics.beyondGraceRefused.inc({ via, lane: r.lane });
    deps.metrics.appliedRows.inc({ status: 'skipped', via }, out.refused.length);
    refused.push(...out.refused.map(graceRefusal));
    // A pushing ai-memory 0.7 sender ignores `skipped`: the receiver's audit chain is where
    // such a refusal stays visible (a catch-up records its own, catchup.refused).
    if (via === 'push') deps.audit.record({ kind: 'federation.refused', actor: peerId, details: { tag: BEYOND_TOMBSTONE_GRACE, status: 200, via, rows: out.refused.slice(0, 100).map((r) => ({ id: r.id, lane: r.lane, at: r.at })), count: out.refused.length } });
  }
  const exp = out.expired;
  if (exp.applied.length > 0) deps.metrics.expiredArrivals.inc({ via, outcome: 'applied' }, exp.applied.length);
  if (exp.noop.length > 0) deps.metrics.expiredArrivals.inc({ via, outcome: 'noop' }, exp.noop.length);
  if (exp.discarded.length > 0) deps.metrics.expiredArrivals.inc({ via, outcome: 'discarded' }, exp.discarded.length);
  const changedEvents = out.archived.length + out.restored.length + out.links.applied.length + out.links.removed.length;
  deps.metrics.appliedRows.inc({ status: 'applied', via }, out.applied.length + out.deleted.length + changedEvents);
  deps.metrics.appliedRows.inc({ status: 'noop', via }, out.noop.length + out.archiveNoop.length + out.links.noop.length);
  if (out.deleted.length > 0) deps.audit.record({ kind: 'memory.deleted', actor: peerId, details: { via, ids: out.deleted.slice(0, 100), count: out.deleted.length } });
  return { applied: out.applied, deleted: out.deleted, noop: out.noop, archived: out.archived, restored: out.restored, archiveNoop: out.archiveNoop, links: out.links, refused, refusedEvents, admitted };
}

/** A push's identity claims against the authenticated peer and this node; a refusal tag or null. */
export function pushIdentityProblem(push: ParsedPush, peerId: string, nodeId: string): 'sender_agent_id_mismatch' | 'recipient_mismatch' | null {
  if (push.sender !== peerId) return 'sender_agent_id_mismatch';
  if (push.recipient !== undefined && push.recipient !== nodeId) return 'recipient_mismatch';
  return null;
}

/**
 * Receives an authenticated push: applies what is admitted and answers per row, in the
 * body shape ai-memory peers read (counters) plus memfed's per-row `results`.
 */
export async function receivePush(deps: ReceiveDeps & { nodeId: string }, peerId: string, push: ParsedPush) {
  const out = await applyFromPeer(deps, peerId, 'push', push, { dryRun: push.dryRun });
  const skipped: RowResult[] = [...push.skipped, ...out.refused.map((r): RowResult => ({ id: r.id, status: 'skipped', reason: `${r.code}: ${r.reason}` })), ...out.refusedEvents];
  deps.metrics.appliedRows.inc({ status: 'skipped', via: 'push' }, push.skipped.length);
  const applied = new Set(out.applied);
  const deleted = new Set(out.deleted);
  const results: RowResult[] = [...skipped];
  // A row refused in the apply (beyond the grace horizon) is answered once, as skipped.
  const refusedIn = new Set(out.refused.filter((r) => r.code === BEYOND_TOMBSTONE_GRACE).map((r) => `${r.lane}:${r.id}`));
  for (const m of out.admitted.memories) if (!refusedIn.has(`memories:${m.id}`)) results.push({ id: m.id, status: applied.has(m.id) ? 'applied' : 'noop' });
  for (const t of out.admitted.tombstones) if (!refusedIn.has(`tombstones:${t.id}`)) results.push({ id: t.id, status: deleted.has(t.id) ? 'applied' : 'noop' });
  // Archive and link elements answer under their memory id, once per id not answered by a
  // row already (a skipped element is among the skipped results: a memfed sender reads a
  // skipped result for an id as a non-ack even when another result for it says applied).
  const answered = new Set(results.map((r) => r.id));
  const laneResult = (id: string, changed: boolean) => {
    if (answered.has(id)) return;
    answered.add(id);
    results.push({ id, status: changed ? 'applied' : 'noop' });
  };
  const archChanged = new Set([...out.archived, ...out.restored]);
  for (const e of out.admitted.archives) laneResult(e.id, archChanged.has(e.id));
  const linkChanged = new Set([...out.links.applied, ...out.links.removed].map(linkKey));
  const linkSources = new Map<string, boolean>();
  for (const l of [...out.admitted.links, ...out.admitted.linkRemovals]) linkSources.set(l.source_id, (linkSources.get(l.source_id) ?? false) || linkChanged.has(linkKey(l)));
  for (const [id, changed] of linkSources) laneResult(id, changed);
  const dry = push.dryRun;
  const unsupported = Object.values(push.unsupported).reduce((a, b) => a + b, 0);
  return {
    applied: out.applied.length,
    deleted: out.deleted.length,
    archived: out.archived.length,
    restored: out.restored.length,
    links_applied: out.links.applied.length,
    // memfed extra: link removals applied (upstream has no removal lane).
    links_removed: out.links.removed.length,
    noop: out.noop.length + out.archiveNoop.length + out.links.noop.length,
    skipped: skipped.length,
    // Upstream's name for lane elements a receiver does not apply (federation_signing_check.rs):
    // never acked as applied; a memfed sender treats a non-zero count as a non-ack.
    unsupported_on_postgres: unsupported,
    ...(unsupported > 0 ? { unsupported_lanes: push.unsupported } : {}),
    dry_run: dry,
    receiver_agent_id: deps.nodeId,
    results,
  };
}
