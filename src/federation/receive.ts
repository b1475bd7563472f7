import type { AuditRecorder } from '../audit/events.js';
import type { Db, Tx } from '../db/client.js';
import type { Policy } from '../governance.js';
import type { Memory } from '../memory/model.js';
import type { Metrics } from '../metrics.js';
import { applyReplicated, type Tombstone } from '../store/replica.js';
import { admitReplicated, type AdmissionRefusal } from './admission.js';
import type { ParsedPush, RowResult } from './wire.js';

/** What applying rows from a peer needs (push receive and catch-up alike). */
export interface ReceiveDeps {
  db: Db;
  policy: Policy | null;
  metrics: Metrics;
  audit: AuditRecorder;
  clockSkewMs: number;
}

export interface PeerApply {
  applied: string[];
  deleted: string[];
  noop: string[];
  refused: AdmissionRefusal[];
  /** The rows admission let through (what was applied, or in a dry run would be). */
  admitted: { memories: Memory[]; tombstones: Tombstone[] };
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
  via: 'push' | 'catchup',
  rows: { memories: Memory[]; tombstones: Tombstone[] },
  /** `inTransaction` also gets admission's refusals (catch-up records them in the same commit). */
  opts: { dryRun?: boolean; inTransaction?: (tx: Tx, refused: AdmissionRefusal[]) => Promise<void> } = {},
): Promise<PeerApply> {
  const { refused, ...admitted } = await admitReplicated(deps.db, deps.policy, peerId, rows, deps.clockSkewMs);
  if (refused.length > 0) {
    deps.metrics.appliedRows.inc({ status: 'skipped', via }, refused.length);
    deps.audit.record({ kind: 'governance.refused', actor: peerId, details: { via, rows: refused.slice(0, 100).map((r) => ({ id: r.id, code: r.code, rule: r.rule, lane: r.lane })), count: refused.length } });
  }
  // upstream src/handlers/federation_receive.rs: in a dry run every row that passes the checks counts as noop.
  if (opts.dryRun) return { applied: [], deleted: [], noop: [...admitted.memories.map((m) => m.id), ...admitted.tombstones.map((t) => t.id)], refused, admitted };
  const inTx = opts.inTransaction;
  const out = await applyReplicated(deps.db, { memories: admitted.memories, tombstones: admitted.tombstones, originPeer: peerId }, inTx ? (tx) => inTx(tx, refused) : undefined);
  deps.metrics.appliedRows.inc({ status: 'applied', via }, out.applied.length + out.deleted.length);
  deps.metrics.appliedRows.inc({ status: 'noop', via }, out.noop.length);
  if (out.deleted.length > 0) deps.audit.record({ kind: 'memory.deleted', actor: peerId, details: { via, ids: out.deleted.slice(0, 100), count: out.deleted.length } });
  return { applied: out.applied, deleted: out.deleted, noop: out.noop, refused, admitted };
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
  const skipped: RowResult[] = [...push.skipped, ...out.refused.map((r): RowResult => ({ id: r.id, status: 'skipped', reason: `${r.code}: ${r.reason}` }))];
  deps.metrics.appliedRows.inc({ status: 'skipped', via: 'push' }, push.skipped.length);
  const applied = new Set(out.applied);
  const deleted = new Set(out.deleted);
  const results: RowResult[] = [...skipped];
  for (const m of out.admitted.memories) results.push({ id: m.id, status: applied.has(m.id) ? 'applied' : 'noop' });
  for (const t of out.admitted.tombstones) results.push({ id: t.id, status: deleted.has(t.id) ? 'applied' : 'noop' });
  return {
    applied: out.applied.length,
    deleted: out.deleted.length,
    noop: out.noop.length,
    skipped: skipped.length,
    dry_run: push.dryRun,
    receiver_agent_id: deps.nodeId,
    results,
    ...(Object.keys(push.ignoredLanes).length > 0 ? { ignored: push.ignoredLanes } : {}),
  };
}
