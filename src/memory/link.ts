import { isValidId } from './model.js';
import { normalizeTimestamp } from './time.js';

/** upstream src/models/link.rs `MemoryLinkRelation` (serde snake_case), all six variants. */
export const LINK_RELATIONS = ['related_to', 'supersedes', 'contradicts', 'derived_from', 'reflects_on', 'derives_from'] as const;
export type LinkRelation = (typeof LINK_RELATIONS)[number];

/** A memory link as it travels (upstream `MemoryLink`, src/models/link.rs) plus memfed's removal time. */
export interface MemoryLink {
  source_id: string;
  target_id: string;
  relation: LinkRelation;
  created_at: string;
  // upstream v0.7 H3 optional fields, carried as sent (skip_serializing_if none)
  signature?: unknown;
  observed_by?: string;
  valid_from?: string;
  valid_until?: string;
}

/** A link removal as memfed replicates it (upstream has no removal lane). */
export interface LinkRemoval {
  source_id: string;
  target_id: string;
  relation: LinkRelation;
  removed_at: string;
}

export const isRelation = (v: unknown): v is LinkRelation => typeof v === 'string' && (LINK_RELATIONS as readonly string[]).includes(v);

/**
 * Upstream src/validate.rs `validate_link`: both ids valid, relation one of the enum,
 * and no self-link. Returns the reason a triple is refused, or null.
 */
export function linkTripleProblem(source: unknown, target: unknown, relation: unknown): string | null {
  if (!isValidId(source)) return 'invalid source_id';
  if (!isValidId(target)) return 'invalid target_id';
  if (!isRelation(relation)) return `invalid relation (expected one of: ${LINK_RELATIONS.join(', ')})`;
  if (source === target) return 'cannot link a memory to itself';
  return null;
}

/** A `links` lane element (upstream serde: source_id, target_id, relation, created_at required). */
export function parseWireLink(raw: unknown): { link: MemoryLink } | { problem: string } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { problem: 'link must be an object' };
  const r = raw as Record<string, unknown>;
  const problem = linkTripleProblem(r.source_id, r.target_id, r.relation);
  if (problem) return { problem };
  const createdAt = normalizeTimestamp(r.created_at);
  if (createdAt === null) return { problem: 'link created_at must be an RFC 3339 timestamp' };
  const link: MemoryLink = { source_id: r.source_id as string, target_id: r.target_id as string, relation: r.relation as LinkRelation, created_at: createdAt };
  if (r.signature !== undefined && r.signature !== null) link.signature = r.signature;
  for (const k of ['observed_by', 'valid_from', 'valid_until'] as const) {
    const v = r[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' || v.length > 256) return { problem: `link ${k} must be a string` };
    link[k] = v;
  }
  return { link };
}

/** A memfed `link_removals` lane element. */
export function parseLinkRemoval(raw: unknown): { removal: LinkRemoval } | { problem: string } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { problem: 'link removal must be an object' };
  const r = raw as Record<string, unknown>;
  const problem = linkTripleProblem(r.source_id, r.target_id, r.relation);
  if (problem) return { problem };
  const at = normalizeTimestamp(r.removed_at);
  if (at === null) return { problem: 'link removed_at must be an RFC 3339 timestamp' };
  return { removal: { source_id: r.source_id as string, target_id: r.target_id as string, relation: r.relation as LinkRelation, removed_at: at } };
}

/** The id a link is reported under in per-row results. */
export const linkKey = (l: { source_id: string; target_id: string; relation: string }) => `${l.source_id}->${l.target_id}/${l.relation}`;
