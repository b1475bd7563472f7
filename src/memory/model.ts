import { hash } from 'node:crypto';
import { ValidationError } from '../errors.js';
import { checkTimestamp, checkTypedOptionalFields, validateAccessCount, validateConfidence, validateContent, validateId, validateMetadata, validateNamespace, validatePriority, validateSource, validateTags, validateTier, validateTitle, validateVersion, type Tier } from './rules.js';
import { MEMORY_MAX_BYTES_DEFAULT, checkMemorySize } from './size.js';
import { formatTimestamp, normalizeTimestamp, parseTimestamp } from './time.js';

// The field rules live in rules.ts (ported from upstream src/validate.rs); re-exported for callers of this module.
export {
  CODES,
  LIMITS,
  SOURCES,
  TIERS,
  jsonDepth,
  validateAgentId,
  validateConfidence,
  validateContent,
  validateId,
  validateMetadata,
  validateNamespace,
  validatePriority,
  validateSource,
  validateTags,
  validateTier,
  validateTitle,
  type Tier,
} from './rules.js';

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

const TIER_TTL_MICROS: Record<Tier, number | null> = { short: 6 * 3600e6, mid: 7 * 86400e6, long: null };

// Only "__proto__" can hurt: JSON.parse makes it an own key that object spreads and
// assignments turn into a prototype. "constructor" and "prototype" are plain data.
const FORBIDDEN_KEYS = new Set(['__proto__']);
// A UTF-16 surrogate without its pair: not valid Unicode, and Postgres jsonb refuses it.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Keys a client may never set directly: the node owns them. */
export const SERVER_FIELDS = ['created_at', 'updated_at', 'access_count', 'version', 'last_accessed_at'] as const;

export function isValidId(value: unknown): value is string {
  try {
    validateId(value);
    return true;
  } catch {
    return false;
  }
}

/** A timestamp field, normalised to the wire form (docs/wire.md, Timestamps). */
export function validateTimestampField(field: string, value: unknown, code?: string): string {
  checkTimestamp(field, value, code);
  return normalizeTimestamp(value)!;
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
 * Validates a full memory object (from a peer, or a client write once built) and returns
 * it with timestamps normalised; unknown keys are preserved; optional nulls are dropped.
 * Strings (title, namespace, tags) are kept as sent: upstream checks them trimmed and
 * stores them untrimmed. The whole row is capped at `maxBytes` serialized (size.ts).
 */
export function validateMemory(input: unknown, opts: { maxBytes?: number } = {}): Memory {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new ValidationError('memory', 'must be an object');
  const src = input as Record<string, unknown>;
  // First, before any copy: assigning an own "__proto__" key would set the prototype.
  assertSafeJson(src);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) if (v !== null && v !== undefined) out[k] = v;
  validateCoreFields(src, out);
  return finishMemory(out, opts.maxBytes);
}

/**
 * The end of validateMemory for a row whose core fields buildNewMemory has just set
 * through the same rules, from a body it checked with assertSafeJson: only the typed
 * optional keys a client may send (and the size cap) are left to check. The create path
 * runs once per write; checking every field twice was a measurable part of it.
 */
export function finishBuiltMemory(built: Record<string, unknown>, opts: { maxBytes?: number } = {}): Memory {
  // Its expires_at was formatted by the builder (from ttl_secs, the tier, or a checked value).
  return finishMemory(built, opts.maxBytes, 'expires_at');
}

function validateCoreFields(src: Record<string, unknown>, out: Record<string, unknown>): void {
  out.id = validateId(src.id);
  // upstream src/validate.rs: validate_memory, field by field (rules.ts), then the typed
  // optional fields of upstream's Memory (src/models/memory.rs).
  out.tier = validateTier(src.tier);
  out.namespace = validateNamespace(src.namespace);
  out.title = validateTitle(src.title);
  out.content = validateContent(src.content);
  out.tags = validateTags(src.tags);
  out.priority = validatePriority(src.priority);
  out.confidence = validateConfidence(src.confidence);
  out.source = validateSource(src.source);
  out.access_count = validateAccessCount(src.access_count);
  out.created_at = validateTimestampField('created_at', src.created_at);
  out.updated_at = validateTimestampField('updated_at', src.updated_at);
  out.metadata = src.metadata === undefined || src.metadata === null ? {} : validateMetadata(src.metadata);
  out.version = src.version === undefined || src.version === null ? 1 : validateVersion(src.version);
}

function finishMemory(out: Record<string, unknown>, maxBytes: number | undefined, normalised?: (typeof optionalTimestampKeys)[number]): Memory {
  for (const k of optionalTimestampKeys) if (k !== normalised && out[k] !== undefined) out[k] = validateTimestampField(k, out[k]);
  checkTypedOptionalFields(out);
  // No second assertSafeJson: every value of `out` is one of the checked input's or one
  // made here (normalised timestamps, the defaults).
  const ordered = orderKeys(out as Memory);
  checkMemorySize(ordered, maxBytes ?? MEMORY_MAX_BYTES_DEFAULT);
  return ordered;
}

const KEY_ORDER = ['id', 'tier', 'namespace', 'title', 'content', 'tags', 'priority', 'confidence', 'source', 'access_count', 'created_at', 'updated_at', 'last_accessed_at', 'expires_at', 'metadata', 'version'];

/** Known keys first in wire order, then unknown keys in their arrival order. */
export function orderKeys(m: Memory): Memory {
  const out: Record<string, unknown> = {};
  for (const k of KEY_ORDER) if (m[k] !== undefined) out[k] = m[k];
  for (const [k, v] of Object.entries(m)) if (!Object.hasOwn(out, k) && v !== undefined) out[k] = v;
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
  // Fast path: a copy with its keys inserted in sorted order, serialized natively. JSON.stringify
  // puts array-index keys ("0", "10") first in numeric order, so an object holding one is
  // serialized by the slow path instead.
  const sorted = sortedCopy(value);
  return sorted === UNSORTABLE ? canonicalSlow(value) : (JSON.stringify(sorted) ?? 'null');
}

const UNSORTABLE = Symbol('unsortable');
const ARRAY_INDEX = /^(?:0|[1-9]\d*)$/;
const isArrayIndex = (k: string) => {
  const c = k.charCodeAt(0);
  return c >= 48 && c <= 57 && ARRAY_INDEX.test(k) && Number(k) < 4294967295;
};

/** `value` with every object's keys in sorted order (arrays copied only where they change), or UNSORTABLE. */
function sortedCopy(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const s = sortedCopy(v);
      if (s === UNSORTABLE) return UNSORTABLE;
      if (s !== v) (out ??= value.slice())[i] = s;
    }
    return out ?? value;
  }
  const obj = value as Record<string, unknown>;
  // The default sort compares UTF-16 code units, as `<` on strings does. No prototype, so
  // a "__proto__" key is an own key like any other.
  const keys = Object.keys(obj).sort();
  const out = Object.create(null) as Record<string, unknown>;
  for (const k of keys) {
    if (isArrayIndex(k)) return UNSORTABLE;
    const s = sortedCopy(obj[k]);
    if (s === UNSORTABLE) return UNSORTABLE;
    out[k] = s;
  }
  return out;
}

/** Canonical JSON by concatenation, for values the fast path cannot order. */
function canonicalSlow(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + canonicalSlow(value[i]);
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = '{';
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    out += `${out.length === 1 ? '' : ','}${JSON.stringify(k)}:${canonicalSlow(v)}`;
  }
  return `${out}}`;
}

/** SHA-256 (hex) of a memory's canonical JSON. */
export function memoryDigest(m: Memory): string {
  return digestOfCanonical(canonicalJson(m));
}

export const digestOfCanonical = (canonical: string): string => hash('sha256', canonical, 'hex');

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
