import { ValidationError } from '../errors.js';
import { parseTimestamp } from './time.js';

/*
 * The field rules of a memory, ported from upstream ai-memory 0.7.0 so that every row
 * memfed commits (client create/update/bulk, or a row applied from a peer) is one an
 * upstream peer accepts. Facts, not code: each rule cites the upstream function
 * (src/validate.rs) or serde type (src/models/memory.rs) it follows. Every refusal is a
 * ValidationError with a stable code per field family (docs/api.md, Validation rules).
 * Deliberate differences from upstream are marked "memfed:".
 */

export const TIERS = ['short', 'mid', 'long'] as const;
export type Tier = (typeof TIERS)[number];
// upstream src/validate.rs: VALID_SOURCES
export const SOURCES = ['user', 'nhi', 'claude', 'hook', 'api', 'cli', 'import', 'consolidation', 'system', 'chaos', 'notify'] as const;
// upstream src/models/memory.rs: MemoryKind (serde snake_case)
export const MEMORY_KINDS = ['observation', 'reflection', 'persona', 'concept', 'entity', 'claim', 'relation', 'event', 'conversation', 'decision'] as const;
// upstream src/models/memory.rs: ConfidenceSource (serde snake_case)
export const CONFIDENCE_SOURCES = ['caller_provided', 'auto_derived', 'calibrated', 'decayed', 'curator_derived'] as const;
// upstream src/models/namespace.rs: VALID_SCOPES
export const SCOPES = ['private', 'team', 'unit', 'org', 'collective'] as const;
// upstream src/validate.rs: RESERVED_AGENT_IDS
export const RESERVED_AGENT_IDS = ['daemon', 'system', 'federation-catchup', 'subscription-dispatch', 'ai:http-internal', 'ai:migrate', 'export-internal', 'governance-internal'] as const;
// upstream src/validate.rs: VALID_SOURCE_URI_SCHEMES
const SOURCE_URI_SCHEMES = ['uri:', 'doc:', 'file:'] as const;

/** upstream src/validate.rs constants (MAX_*), src/models/mod.rs MAX_CONTENT_SIZE, src/models/namespace.rs MAX_NAMESPACE_DEPTH. */
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
  citations: 64,
  sourceUriBytes: 4_096,
  // upstream src/validate.rs: validate_ttl_secs (at most one year)
  ttlSecs: 365 * 86_400,
} as const;

/** One stable code per field family. */
export const CODES = {
  id: 'INVALID_ID',
  tier: 'INVALID_TIER',
  namespace: 'INVALID_NAMESPACE',
  title: 'INVALID_TITLE',
  content: 'INVALID_CONTENT',
  tags: 'INVALID_TAGS',
  priority: 'INVALID_PRIORITY',
  confidence: 'INVALID_CONFIDENCE',
  source: 'INVALID_SOURCE',
  accessCount: 'INVALID_ACCESS_COUNT',
  timestamp: 'INVALID_TIMESTAMP',
  expiresAt: 'INVALID_EXPIRES_AT',
  ttlSecs: 'INVALID_TTL_SECS',
  scope: 'INVALID_SCOPE',
  metadata: 'INVALID_METADATA',
  version: 'INVALID_VERSION',
  agentId: 'INVALID_AGENT_ID',
  memoryKind: 'INVALID_MEMORY_KIND',
  confidenceSource: 'INVALID_CONFIDENCE_SOURCE',
  confidenceSignals: 'INVALID_CONFIDENCE_SIGNALS',
  citations: 'INVALID_CITATIONS',
  sourceUri: 'INVALID_SOURCE_URI',
  sourceSpan: 'INVALID_SOURCE_SPAN',
  reflectionDepth: 'INVALID_REFLECTION_DEPTH',
  personaVersion: 'INVALID_PERSONA_VERSION',
  entityId: 'INVALID_ENTITY_ID',
} as const;

const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;

const byteLength = (s: string) => Buffer.byteLength(s, 'utf8');
const chars = (s: string) => [...s].length;
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

// Rust's char::is_whitespace (the Unicode White_Space property), which str::trim strips.
// Not JavaScript's trim: that one leaves U+0085 and strips U+FEFF.
const WS = '\\t\\n\\v\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const TRIM_RE = new RegExp(`^[${WS}]+|[${WS}]+$`, 'g');

/** upstream str::trim as upstream validators apply it (Unicode White_Space, U+0085 included). */
export function rustTrim(s: string): string {
  return s.replace(TRIM_RE, '');
}

// Rust's char::is_control: general category Cc, i.e. C0 (U+0000-U+001F), DEL and C1 (U+007F-U+009F).
// eslint-disable-next-line no-control-regex
const UNCLEAN_RE = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/;

/** upstream src/validate.rs: is_clean_string (no control character other than `\n` and `\t`). */
export function isCleanString(s: string): boolean {
  return !UNCLEAN_RE.test(s);
}

const fail = (code: string) => (field: string, message: string): never => {
  throw new ValidationError(field, message, code);
};

/** upstream src/validate.rs: validate_id (and the memfed path-id check). */
export function validateId(value: unknown, field = 'id'): string {
  const no = fail(CODES.id);
  if (typeof value !== 'string' || rustTrim(value).length === 0) return no(field, 'must be a non-empty string');
  if (byteLength(value) > LIMITS.idBytes) return no(field, `must be at most ${LIMITS.idBytes} bytes`);
  // upstream: is_clean_string, no "..", no "/" or "\", then the byte allowlist; the allowlist implies the rest.
  if (!/^[A-Za-z0-9_:.@-]+$/.test(value) || value.includes('..')) return no(field, 'may contain only [A-Za-z0-9_:.@-] and no ".."');
  // memfed: "." would name the collection itself in a URL path (/memories/.), unreachable.
  if (value === '.') return no(field, 'must not be "."');
  return value;
}

/** upstream src/validate.rs: validate_agent_id (validate_agent_id_shape + RESERVED_AGENT_IDS), for wire-supplied ids. */
export function validateAgentId(value: unknown, field = 'agent_id'): string {
  const no = fail(CODES.agentId);
  if (typeof value !== 'string' || value.length === 0 || value.length > LIMITS.agentIdChars || !/^[A-Za-z0-9_\-:@./]+$/.test(value)) {
    return no(field, `must be 1-${LIMITS.agentIdChars} chars of [A-Za-z0-9_-:@./]`);
  }
  // upstream validate_agent_id_shape: path-traversal guard.
  if (value.includes('..') || value.startsWith('/')) return no(field, 'must not contain ".." nor start with "/"');
  if ((RESERVED_AGENT_IDS as readonly string[]).includes(value)) return no(field, `${value} is reserved for internal use`);
  return value;
}

/**
 * upstream src/validate.rs: validate_title. Checked trimmed (upstream str::trim), returned
 * as sent: upstream stores titles untrimmed (docs/api.md, Validation rules).
 */
export function validateTitle(value: unknown): string {
  const no = fail(CODES.title);
  if (typeof value !== 'string') return no('title', 'must be a string');
  const t = rustTrim(value);
  if (t.length === 0) return no('title', 'must not be empty');
  if (chars(t) > LIMITS.titleChars) return no('title', `must be at most ${LIMITS.titleChars} characters`);
  if (!isCleanString(t)) return no('title', 'must not contain control characters');
  return value;
}

/** upstream src/validate.rs: validate_content (whitespace-only refused; size and characters checked untrimmed). */
export function validateContent(value: unknown): string {
  const no = fail(CODES.content);
  if (typeof value !== 'string' || value.length === 0) return no('content', 'must be a non-empty string');
  if (rustTrim(value).length === 0) return no('content', 'must not be only whitespace');
  if (byteLength(value) > LIMITS.contentBytes) return no('content', `must be at most ${LIMITS.contentBytes} bytes`);
  if (!isCleanString(value)) return no('content', 'must not contain control characters other than \\n and \\t');
  return value;
}

/**
 * upstream src/validate.rs: validate_namespace, on the trimmed namespace, returned as sent.
 * Upstream allows `\t`, `\n` and non-ASCII spaces inside a namespace; only U+0020 is refused.
 */
export function validateNamespace(value: unknown, field = 'namespace'): string {
  const no = fail(CODES.namespace);
  if (typeof value !== 'string' || value.length === 0) return no(field, 'must be a non-empty string');
  const t = rustTrim(value);
  if (t.length === 0) return no(field, 'must not be only whitespace');
  if (chars(t) > LIMITS.namespaceChars) return no(field, `must be at most ${LIMITS.namespaceChars} characters`);
  if (t.includes('\\') || t.includes('\u0000')) return no(field, 'must not contain backslash or NUL');
  if (t.includes(' ')) return no(field, 'must not contain spaces');
  if (!isCleanString(t)) return no(field, 'must not contain control characters other than \\n and \\t');
  // upstream: no leading or trailing "/", no empty segment, no "." or ".." segment.
  const segments = t.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return no(field, 'must not have empty, "." or ".." segments');
  // upstream src/models/namespace.rs: namespace_depth.
  if (segments.length > LIMITS.namespaceDepth) return no(field, `must be at most ${LIMITS.namespaceDepth} levels deep`);
  return value;
}

/** upstream src/validate.rs: validate_tags (each tag checked trimmed, stored as sent). */
export function validateTags(value: unknown): string[] {
  const no = fail(CODES.tags);
  if (!Array.isArray(value)) return no('tags', 'must be an array of strings');
  if (value.length > LIMITS.tags) return no('tags', `must have at most ${LIMITS.tags} entries`);
  value.forEach((tag, i) => {
    const field = `tags[${i}]`;
    if (typeof tag !== 'string') return no(field, 'must be a non-empty string');
    const t = rustTrim(tag);
    if (t.length === 0) return no(field, 'must be a non-empty string');
    if (byteLength(t) > LIMITS.tagBytes) return no(field, `must be at most ${LIMITS.tagBytes} bytes`);
    if (!isCleanString(t)) return no(field, 'must not contain control characters');
  });
  return value as string[];
}

/** upstream src/models/memory.rs: Tier (serde snake_case). */
export function validateTier(value: unknown): Tier {
  if (!TIERS.includes(value as Tier)) fail(CODES.tier)('tier', `must be one of ${TIERS.join(', ')}`);
  return value as Tier;
}

function integer(code: string, field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) fail(code)(field, `must be an integer in [${min}, ${max}]`);
  return value as number;
}

/** upstream src/validate.rs: validate_priority (i32 in 1..=10). */
export const validatePriority = (v: unknown) => integer(CODES.priority, 'priority', v, 1, 10);

/** upstream src/validate.rs: validate_memory, access_count (i64) >= 0. memfed: at most 2^53-1. */
export const validateAccessCount = (v: unknown) => integer(CODES.accessCount, 'access_count', v, 0, Number.MAX_SAFE_INTEGER);

/** memfed: version 1..2^31-1 (stored as int4). upstream src/models/memory.rs: version is an i64, default 1. */
export const validateVersion = (v: unknown) => integer(CODES.version, 'version', v, 1, INT32_MAX);

/** upstream src/validate.rs: validate_confidence (finite, 0.0..=1.0). */
export function validateConfidence(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) fail(CODES.confidence)('confidence', 'must be a number in [0, 1]');
  return value as number;
}

/** upstream src/validate.rs: validate_source (VALID_SOURCES). */
export function validateSource(value: unknown): string {
  if (!SOURCES.includes(value as (typeof SOURCES)[number])) fail(CODES.source)('source', `must be one of ${SOURCES.join(', ')}`);
  return value as string;
}

/** upstream src/validate.rs: validate_scope (VALID_SCOPES), for the create-only `scope` input. */
export function validateScope(value: unknown): string {
  if (!SCOPES.includes(value as (typeof SCOPES)[number])) fail(CODES.scope)('scope', `must be one of ${SCOPES.join(', ')}`);
  return value as string;
}

/** upstream src/validate.rs: validate_ttl_secs (positive, at most one year). */
export function validateTtlSecs(value: unknown): number {
  return integer(CODES.ttlSecs, 'ttl_secs', value, 1, LIMITS.ttlSecs);
}

/** upstream src/validate.rs: is_valid_rfc3339 on the timestamp fields of validate_memory. */
export function checkTimestamp(field: string, value: unknown, code: string = CODES.timestamp): void {
  if (parseTimestamp(value) === null) fail(code)(field, 'must be an RFC 3339 timestamp');
}

/** upstream src/validate.rs: validate_metadata (object, <= 65,536 bytes serialized, nesting <= 32). */
export function validateMetadata(value: unknown): Record<string, unknown> {
  const no = fail(CODES.metadata);
  if (!isObject(value)) return no('metadata', 'must be an object');
  if (jsonDepth(value) > LIMITS.metadataDepth) return no('metadata', `must be nested at most ${LIMITS.metadataDepth} levels`);
  if (byteLength(JSON.stringify(value)) > LIMITS.metadataBytes) return no('metadata', `must serialize to at most ${LIMITS.metadataBytes} bytes`);
  return value;
}

/** Depth of a parsed JSON value (scalars 0, `{}` 1, as upstream json_depth), iterative so hostile input cannot blow the stack. */
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

/** upstream src/validate.rs: validate_source_uri (a `uri:`, `doc:` or `file:` form with a payload). */
function checkSourceUri(code: string, field: string, value: unknown): void {
  const no = fail(code);
  if (typeof value !== 'string') return no(field, 'must be a string');
  const t = rustTrim(value);
  if (t.length === 0) return no(field, 'must not be empty');
  if (byteLength(t) > LIMITS.sourceUriBytes) return no(field, `must be at most ${LIMITS.sourceUriBytes} bytes`);
  if (!isCleanString(t)) return no(field, 'must not contain control characters');
  const scheme = SOURCE_URI_SCHEMES.find((p) => t.startsWith(p));
  if (!scheme) return no(field, `must start with one of ${SOURCE_URI_SCHEMES.join(', ')}`);
  if (rustTrim(t.slice(scheme.length)).length === 0) return no(field, `has an empty payload after ${scheme}`);
}

/**
 * upstream src/models/memory.rs: SourceSpan {start: usize, end: usize}; src/validate.rs:
 * validate_source_span (start < end). memfed: offsets up to 2^53-1.
 */
function checkSpan(code: string, field: string, value: unknown): void {
  const no = fail(code);
  if (!isObject(value)) return no(field, 'must be an object {start, end}');
  for (const k of ['start', 'end'] as const) {
    const n = value[k];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return no(`${field}.${k}`, 'must be a non-negative integer');
  }
  if ((value.start as number) >= (value.end as number)) return no(field, 'requires start < end');
}

/** upstream src/models/memory.rs: Citation; src/validate.rs: validate_citations / validate_citation. */
function checkCitations(value: unknown): void {
  const no = fail(CODES.citations);
  if (!Array.isArray(value)) return no('citations', 'must be an array of citations');
  if (value.length > LIMITS.citations) return no('citations', `must have at most ${LIMITS.citations} entries`);
  value.forEach((c, i) => {
    const f = `citations[${i}]`;
    if (!isObject(c)) return no(f, 'must be an object {uri, accessed_at, hash?, span?}');
    checkSourceUri(CODES.citations, `${f}.uri`, c.uri);
    if (typeof c.accessed_at !== 'string') return no(`${f}.accessed_at`, 'must be an RFC 3339 timestamp');
    checkTimestamp(`${f}.accessed_at`, c.accessed_at, CODES.citations);
    // upstream: 64 ASCII hex digits (is_ascii_hexdigit: either case).
    if (c.hash !== undefined && c.hash !== null && (typeof c.hash !== 'string' || !/^[0-9A-Fa-f]{64}$/.test(c.hash))) return no(`${f}.hash`, 'must be 64 hex characters (SHA-256)');
    if (c.span !== undefined && c.span !== null) checkSpan(CODES.citations, `${f}.span`, c.span);
  });
}

/** upstream src/models/memory.rs: ConfidenceSignals (every field required, typed). */
function checkConfidenceSignals(value: unknown): void {
  const no = fail(CODES.confidenceSignals);
  const f = 'confidence_signals';
  if (!isObject(value)) return no(f, 'must be an object');
  for (const k of ['source_age_days', 'freshness_factor', 'baseline_per_source']) {
    if (typeof value[k] !== 'number') return no(`${f}.${k}`, 'must be a number');
  }
  if (typeof value.atom_derivation !== 'boolean') return no(`${f}.atom_derivation`, 'must be a boolean');
  const n = value.prior_corroboration_count;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) return no(`${f}.prior_corroboration_count`, 'must be an integer');
}

/**
 * The typed optional keys of upstream's Memory (src/models/memory.rs) that memfed stores
 * as pass-through keys: a present, non-null value must deserialize into upstream's type
 * and pass its validate_memory rule. Absent (or null, which memfed drops) is upstream's
 * serde default.
 */
export function checkTypedOptionalFields(m: Record<string, unknown>): void {
  const has = (k: string) => m[k] !== undefined && m[k] !== null;
  if (has('memory_kind') && !MEMORY_KINDS.includes(m.memory_kind as (typeof MEMORY_KINDS)[number])) {
    fail(CODES.memoryKind)('memory_kind', `must be one of ${MEMORY_KINDS.join(', ')}`);
  }
  if (has('confidence_source') && !CONFIDENCE_SOURCES.includes(m.confidence_source as (typeof CONFIDENCE_SOURCES)[number])) {
    fail(CODES.confidenceSource)('confidence_source', `must be one of ${CONFIDENCE_SOURCES.join(', ')}`);
  }
  // reflection_depth: i32, persona_version: Option<i32>.
  if (has('reflection_depth')) integer(CODES.reflectionDepth, 'reflection_depth', m.reflection_depth, INT32_MIN, INT32_MAX);
  if (has('persona_version')) integer(CODES.personaVersion, 'persona_version', m.persona_version, INT32_MIN, INT32_MAX);
  // entity_id: Option<String>.
  if (has('entity_id') && typeof m.entity_id !== 'string') fail(CODES.entityId)('entity_id', 'must be a string');
  if (has('citations')) checkCitations(m.citations);
  if (has('source_uri')) checkSourceUri(CODES.sourceUri, 'source_uri', m.source_uri);
  if (has('source_span')) checkSpan(CODES.sourceSpan, 'source_span', m.source_span);
  if (has('confidence_signals')) checkConfidenceSignals(m.confidence_signals);
}
