import type { Memory, Tier } from './model.js';
import { formatTimestamp, parseTimestamp } from './time.js';

/*
 * Tier expiry, as upstream ai-memory 0.7.0 has it (facts, not code; docs/compatibility.md,
 * "Tier expiry"):
 * - a new memory without `ttl_secs`/`expires_at` expires at created_at + its tier's TTL
 *   (short 6 h, mid 7 days, long never; upstream [ttl] short_ttl_secs / mid_ttl_secs);
 * - an update keeps `expires_at` unless the body sets it (upstream update: COALESCE);
 * - upstream extends a short/mid TTL (1 h / 1 day from now) only when a recall touches the
 *   memory, without changing updated_at: a local, unreplicated change. memfed has no
 *   recall, and GET does not touch (upstream's get does not either), so expiry only
 *   changes with a new version, which replicates like any other;
 * - list, search and recall skip rows with expires_at <= now; GC deletes them without a
 *   tombstone and without telling peers.
 * memfed: get, `since` and feed pages skip them too, so an expired memory is served
 * nowhere; every node holding the same version expires it at the same instant.
 */

/** Default TTL per tier, in seconds (null: never expires). */
export type TierTtls = Record<Tier, number | null>;

export const DEFAULT_TIER_TTL_SECS: TierTtls = { short: 6 * 3600, mid: 7 * 86400, long: null };

/** created_at (a timestamp, or its microseconds) + the tier's TTL, or undefined for a tier that never expires. */
export function tierExpiry(tier: Tier, createdAt: string | number, ttls: TierTtls = DEFAULT_TIER_TTL_SECS): string | undefined {
  const ttl = ttls[tier];
  if (ttl === null) return undefined;
  const created = typeof createdAt === 'number' ? createdAt : parseTimestamp(createdAt);
  return created === null ? undefined : formatTimestamp(created + ttl * 1e6);
}

/** Whether an `expires_at` value has passed at `nowMicros` (expires_at <= now; absent never). */
export function isExpiredAt(expiresAt: unknown, nowMicros: number): boolean {
  if (expiresAt === undefined || expiresAt === null) return false;
  const t = parseTimestamp(expiresAt);
  return t !== null && t <= nowMicros;
}

/** Whether a memory has expired at `nowMicros`. */
export const isExpired = (m: Pick<Memory, 'expires_at'>, nowMicros: number) => isExpiredAt(m.expires_at, nowMicros);

/**
 * The LWW time of an incoming row version: a memory's updated_at, a tombstone's
 * deleted_at. What the grace-horizon refusal compares.
 */
export const lwwTime = (row: { updated_at: string } | { deleted_at: string }) => ('deleted_at' in row ? row.deleted_at : row.updated_at);

/**
 * The grace-horizon refusal (docs/operations.md, "Tombstone GC"): a row version for an id
 * this node holds nothing of (no row, no tombstone), whose LWW time is no newer than the
 * newest tombstone this node has collected (`collectedThroughMicros`, always older than
 * now - TOMBSTONE_GRACE), may be the copy of a deleted memory whose tombstone is gone:
 * refused. A node that never collected a tombstone refuses nothing (it lost nothing).
 */
export function beyondTombstoneGrace(lwwMicros: number, held: boolean, collectedThroughMicros: number | null): boolean {
  return !held && collectedThroughMicros !== null && lwwMicros <= collectedThroughMicros;
}

export const BEYOND_TOMBSTONE_GRACE = 'beyond_tombstone_grace';
