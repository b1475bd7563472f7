import { createHash } from 'node:crypto';
import { ValidationError } from '../errors.js';
import { formatTimestamp, normalizeTimestamp, parseTimestamp } from './time.js';

/**
 * The memory object of docs/wire.md. Known keys are typed; unknown keys from newer peers
 * are kept as they came and round-trip unchanged.
 */
export interface Memory {
  id: string;
  tier: Tier;
  namespace: string;
  title: string;
  content: string;
  tags: string[];
  priority: number;
  confidence: number;
  source: string;
  access_count: number;
  created_at: string;
  updated_at: string;
  metadata: Record<string, unknown>;
  version: number;
  last_accessed_at?: string;
  expires_at?: string;
  [extra: string]: unknown;
}

export const TIERS = ['short', 'mid', 'long'] as const;
export type Tier = (typeof TIERS)[number];
export const SOURCES = ['user', 'nhi', 'claude', 'hook', 'api', 'cli', 'import', 'consolidation', 'system', 'chaos', 'notify'] as const;

const TIER_TTL_MICROS: Record<Tier, number | null> = { short: 6 * 3600e6, mid: 7 * 86400e6, long: null };

export const LIMITS = {
  idBytes: 128,
  titleChars: 512,
  contentBytes: 65_536,
  namespaceChars: 512,
  namespaceDepth: 8,
  tags: 50,
  tagBytes: 128,
  metadataBytes: 65_536,
  metadataDepth: 32,
  agentIdChars: 128,
} as const;

const ID_RE = /^[A-Za-z0-9_:.@-]+$/;
const AGENT_ID_RE = /^[A-Za-z0-9_\-:@./]+$/;
// Control characters other than \n and \t (matching them is the point).
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u0008\u000B-\u001F\u007F]/;
// Only "__proto__" can hurt: JSON.parse makes it an own key that object spreads and
// assignments turn into a prototype. "constructor" and "prototype" are plain data.
const FORBIDDEN_KEYS = new Set(['__proto__']);
// A UTF-16 surrogate without its pair: not valid Unicode, and Postgres jsonb refuses it.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const INT4_MAX = 2_147_483_647;

/** Keys a client may never set directly: the node owns them. */
export const SERVER_FIELDS = ['created_at', 'updated_at', 'access_count', 'version', 'last_accessed_at'] as const;

const byteLength = (s: string) => Buffer.byteLength(s, 'utf8');

export function validateId(value: unknown, field = 'id'): string {
  if (typeof value !== 'string' || value.length === 0) throw new ValidationError(field, 'must be a non-empty string');
  if (byteLength(value) > LIMITS.idBytes) throw new ValidationError(field, `must be at most ${LIMITS.idBytes} bytes`);
  if (!ID_RE.test(value) || value.includes('..')) throw new ValidationError(field, 'may contain only [A-Za-z0-9_:.@-] and no ".."');
  return value;
}

export function isValidId(value: unknown): value is string {
  try {
    validateId(value);
    return true;
  } catch {
    return false;
  }
}

export function validateAgentId(value: unknown, field = 'agent_id'): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > LIMITS.agentIdChars || !AGENT_ID_RE.test(value)) {
    throw new ValidationError(field, `must be 1-${LIMITS.agentIdChars} chars of [A-Za-z0-9_-:@./]`, 'INVALID_AGENT_ID');
  }
  return value;
}

export function validateTitle(value: unknown): string {
  if (typeof value !== 'string') throw new ValidationError('title', 'must be a string');
  const t = value.trim();
  if (t.length === 0) throw new ValidationError('title', 'must not be empty');
  if ([...t].length > LIMITS.titleChars) throw new ValidationError('title', `must be at most ${LIMITS.titleChars} characters`);
  if (CONTROL_RE.test(t)) throw new ValidationError('title', 'must not contain control characters');
  return t;
}

export function validateContent(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw new ValidationError('content', 'must be a non-empty string');
  if (byteLength(value) > LIMITS.contentBytes) throw new ValidationError('content', `must be at most ${LIMITS.contentBytes} bytes`);
  if (value.includes('\u0000')) throw new ValidationError('content', 'must not contain NUL');
  return value;
}

export function validateNamespace(value: unknown, field = 'namespace'): string {
  if (typeof value !== 'string' || value.length === 0) throw new ValidationError(field, 'must be a non-empty string');
  if ([...value].length > LIMITS.namespaceChars) throw new ValidationError(field, `must be at most ${LIMITS.namespaceChars} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000\\]/.test(value) || CONTROL_RE.test(value)) throw new ValidationError(field, 'must not contain whitespace, NUL, control characters or backslash');
  const segments = value.split('/');
  if (segments.length > LIMITS.namespaceDepth) throw new ValidationError(field, `must be at most ${LIMITS.namespaceDepth} levels deep`);
  if (segments.some((s) => s === '' || s === '.' || s === '..')) throw new ValidationError(field, 'must not have empty, "." or ".." segments');
  return value;
}

export function validateTags(value: unknown): string[] {
  if (!Array.isArray(value)) throw new ValidationError('tags', 'must be an array of strings');
  if (value.length > LIMITS.tags) throw new ValidationError('tags', `must have at most ${LIMITS.tags} entries`);
  return value.map((t, i) => {
    if (typeof t !== 'string' || t.length === 0) throw new ValidationError(`tags[${i}]`, 'must be a non-empty string');
    if (byteLength(t) > LIMITS.tagBytes) throw new ValidationError(`tags[${i}]`, `must be at most ${LIMITS.tagBytes} bytes`);
    if (CONTROL_RE.test(t)) throw new ValidationError(`tags[${i}]`, 'must not contain control characters');
    return t;
  });
}

export function validateTier(value: unknown): Tier {
  if (!TIERS.includes(value as Tier)) throw new ValidationError('tier', `must be one of ${TIERS.join(', ')}`);
  return value as Tier;
}

function validateInt(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(field, `must be an integer in [${min}, ${max}]`);
  }
  return value;
}

export const validatePriority = (v: unknown) => validateInt('priority', v, 1, 10);

export function validateConfidence(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) throw new ValidationError('confidence', 'must be a number in [0, 1]');
  return value;
}

export function validateSource(value: unknown): string {
  if (!SOURCES.includes(value as (typeof SOURCES)[number])) throw new ValidationError('source', `must be one of ${SOURCES.join(', ')}`);
  return value as string;
}

export function validateTimestampField(field: string, value: unknown): string {
  const t = normalizeTimestamp(value);
  if (t === null) throw new ValidationError(field, 'must be an RFC 3339 timestamp');
  return t;
}

export function validateMetadata(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ValidationError('metadata', 'must be an object');
  if (jsonDepth(value) > LIMITS.metadataDepth) throw new ValidationError('metadata', `must be nested at most ${LIMITS.metadataDepth} levels`);
  if (byteLength(JSON.stringify(value)) > LIMITS.metadataBytes) throw new ValidationError('metadata', `must serialize to at most ${LIMITS.metadataBytes} bytes`);
  return value as Record<string, unknown>;
}

/** Depth of a parsed JSON value (scalars 0, `{}` 1), iterative so hostile input cannot blow the stack. */
export function jsonDepth(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v !== null && typeof v === 'object') {
      max = Math.max(max, d + 1);
      for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1]);
    }
  }
  return max;
}

/**
 * Refuses, anywhere in a parsed body: NUL and lone surrogates in strings and keys, the
 * "__proto__" key, and non-finite numbers (1e400 parses to Infinity and would be stored as
 * null, so nodes would hash the same memory differently).
 */
export function assertSafeJson(value: unknown): void {
  const stack: unknown[] = [value];
  const checkString = (s: string, where: string) => {
    if (s.includes('\u0000')) throw new ValidationError(where, 'must not contain NUL (\\u0000)', 'NUL_CHARACTER');
    if (LONE_SURROGATE.test(s)) throw new ValidationError(where, 'must be valid Unicode (lone surrogate)', 'INVALID_UNICODE');
  };
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === 'string') checkString(v, 'body');
    else if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new ValidationError('body', 'numbers must be finite', 'INVALID_NUMBER');
    } else if (Array.isArray(v)) {
      stack.push(...v);
    } else if (v !== null && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) {
        if (FORBIDDEN_KEYS.has(k)) throw new ValidationError(k, 'is a reserved key', 'FORBIDDEN_KEY');
        checkString(k, 'key');
        stack.push(child);
      }
    }
  }
}

const optionalTimestampKeys = ['last_accessed_at', 'expires_at', 'confidence_decayed_at'] as const;

/**
 * Validates a full memory object (from a peer or from storage) and returns it with
 * timestamps normalised; unknown keys are preserved; optional nulls are dropped.
 */
export function validateMemory(input: unknown): Memory {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new ValidationError('memory', 'must be an object');
  const src = input as Record<string, unknown>;
  // First, before any copy: assigning an own "__proto__" key would set the prototype.
  assertSafeJson(src);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) if (v !== null && v !== undefined) out[k] = v;
  out.id = validateId(src.id);
  out.tier = validateTier(src.tier);
  out.namespace = validateNamespace(src.namespace);
  out.title = validateTitle(src.title);
  out.content = validateContent(src.content);
  out.tags = validateTags(src.tags);
  out.priority = validatePriority(src.priority);
  out.confidence = validateConfidence(src.confidence);
  out.source = validateSource(src.source);
  out.access_count = validateInt('access_count', src.access_count, 0, Number.MAX_SAFE_INTEGER);
  out.created_at = validateTimestampField('created_at', src.created_at);
  out.updated_at = validateTimestampField('updated_at', src.updated_at);
  out.metadata = src.metadata === undefined || src.metadata === null ? {} : validateMetadata(src.metadata);
  out.version = src.version === undefined || src.version === null ? 1 : validateInt('version', src.version, 1, INT4_MAX);
  for (const k of optionalTimestampKeys) if (out[k] !== undefined) out[k] = validateTimestampField(k, out[k]);
  assertSafeJson(out);
  return orderKeys(out as Memory);
}

const KEY_ORDER = ['id', 'tier', 'namespace', 'title', 'content', 'tags', 'priority', 'confidence', 'source', 'access_count', 'created_at', 'updated_at', 'last_accessed_at', 'expires_at', 'metadata', 'version'];

/** Known keys first in wire order, then unknown keys in their arrival order. */
export function orderKeys(m: Memory): Memory {
  const out: Record<string, unknown> = {};
  for (const k of KEY_ORDER) if (m[k] !== undefined) out[k] = m[k];
  for (const [k, v] of Object.entries(m)) if (!(k in out) && v !== undefined) out[k] = v;
  return out as Memory;
}

/** `expires_at` back-filled from `created_at` and the tier TTL when absent. */
export function defaultExpiry(tier: Tier, createdAt: string): string | undefined {
  const ttl = TIER_TTL_MICROS[tier];
  const created = parseTimestamp(createdAt);
  return ttl === null || created === null ? undefined : formatTimestamp(created + ttl);
}

/** Canonical JSON: sorted keys, no whitespace. Stable across memfed nodes. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function memoryDigest(m: Memory): string {
  return createHash('sha256').update(canonicalJson(m)).digest('hex');
}

/** A stored or incoming version of a memory id, as last-writer-wins compares them. */
export interface Versioned {
  memory: Memory;
  deletedAt: string | null;
  digest?: string;
}

/**
 * LWW order (docs/wire.md, Apply semantics): later time wins; at equal time a tombstone
 * beats a live copy; between live copies the greater SHA-256 of the canonical JSON wins,
 * so every node picks the same winner.
 */
export function compareVersions(a: Versioned, b: Versioned): number {
  const ta = parseTimestamp(a.deletedAt ?? a.memory.updated_at) ?? 0;
  const tb = parseTimestamp(b.deletedAt ?? b.memory.updated_at) ?? 0;
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ka = a.deletedAt === null ? 0 : 1;
  const kb = b.deletedAt === null ? 0 : 1;
  if (ka !== kb) return ka - kb;
  if (ka === 1) return 0;
  const da = a.digest ?? memoryDigest(a.memory);
  const db = b.digest ?? memoryDigest(b.memory);
  return da === db ? 0 : da < db ? -1 : 1;
}
