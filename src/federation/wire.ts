import { ApiError } from '../errors.js';
import { isValidId, validateMemory, type Memory } from '../memory/model.js';
import { normalizeTimestamp } from '../memory/time.js';
import type { Tombstone } from '../store/replica.js';

export const LANE_MAX = 1000;
const CAPPED_LANES = ['memories', 'deletions', 'archives', 'restores', 'links', 'tombstones'] as const;

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
  skipped: RowResult[];
  ignoredLanes: Record<string, number>;
}

function refuse(message: string, code = 'INVALID_PUSH'): ApiError {
  return new ApiError(400, code, message);
}

/** Parses `POST /api/v1/sync/push`; lane caps as upstream, unknown lanes ignored. */
export function parsePushBody(body: unknown, nowIso: string): ParsedPush {
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
      memories.push(validateMemory(raw));
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
    if (!tombIds.has(id)) tombstones.push({ id, deleted_at: nowIso });
  }
  const ignoredLanes: Record<string, number> = {};
  for (const lane of ['archives', 'restores', 'links'] as const) {
    const v = b[lane];
    if (Array.isArray(v) && v.length > 0) ignoredLanes[lane] = v.length;
  }
  return {
    sender: b.sender_agent_id,
    recipient: typeof b.recipient === 'string' ? b.recipient : undefined,
    dryRun: b.dry_run === true,
    memories,
    tombstones,
    skipped,
    ignoredLanes,
  };
}

/** The outbound body: memories, upstream `deletions`, memfed `tombstones`, audience. */
export function buildPushBody(args: { sender: string; recipient: string; memories: Memory[]; tombstones: Tombstone[] }) {
  return {
    sender_agent_id: args.sender,
    recipient: args.recipient,
    memories: args.memories,
    deletions: args.tombstones.map((t) => t.id),
    tombstones: args.tombstones,
  };
}

export interface PushResponse {
  applied?: number;
  deleted?: number;
  noop?: number;
  skipped?: number;
  results?: RowResult[];
  receiver_agent_id?: string;
}
