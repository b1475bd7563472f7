import { type JNode, jsonDepth, serdeLength } from './json.js';
import type { UpLink, UpMemory } from './serde.js';

/**
 * upstream's row validation, ported as facts from src/validate.rs (release/v0.7.0). Each
 * function returns the upstream error text or null. Lengths: Rust `len()` is UTF-8 bytes,
 * `chars().count()` is Unicode scalar values.
 */
export type Verdict = string | null;

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const chars = (s: string) => [...s].length;

/** Rust char::is_control: general category Cc, i.e. U+0000-U+001F and U+007F-U+009F. */
export const isControl = (cp: number) => cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f);

/** src/validate.rs is_clean_string: no control character other than `\n` and `\t`. */
export function isCleanString(s: string): boolean {
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (isControl(cp) && ch !== '\n' && ch !== '\t') return false;
  }
  return true;
}

// Rust str::trim strips Unicode White_Space (which includes U+0085 and excludes U+FEFF,
// unlike JavaScript's trim).
const WHITE_SPACE = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000]);
export function rustTrim(s: string): string {
  const cps = [...s];
  let a = 0;
  let b = cps.length;
  while (a < b && WHITE_SPACE.has(cps[a]!.codePointAt(0)!)) a++;
  while (b > a && WHITE_SPACE.has(cps[b - 1]!.codePointAt(0)!)) b--;
  return cps.slice(a, b).join('');
}

/**
 * chrono 0.4.44 DateTime::parse_from_rfc3339 (used by validate.rs is_valid_rfc3339 and by
 * federation_sync_since.rs for `since`): `YYYY-MM-DD` then `T`, `t` or a space, `HH:MM:SS`,
 * an optional fraction of one or more digits, then `Z`/`z` or `±HH:MM` (also U+2212 as the
 * minus sign; offset hours <= 23); second 60 is a leap second; calendar dates checked.
 */
export function isValidRfc3339(s: string): boolean {
  const m = /^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(?:[Zz]|[+\-\u2212]([0-9]{2}):([0-9]{2}))$/.exec(s);
  if (!m) return false;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || h > 23 || mi > 59 || se > 60) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1]!;
  if (d < 1 || d > days) return false;
  if (m[8] !== undefined && (Number(m[8]) > 23 || Number(m[9]) > 59)) return false;
  return true;
}

// src/validate.rs constants.
const MAX_TITLE_LEN = 512;
const MAX_NAMESPACE_LEN = 512;
const MAX_NAMESPACE_DEPTH = 8; // src/models/namespace.rs
const MAX_SOURCE_LEN = 64;
const MAX_TAG_LEN = 128;
const MAX_TAGS_COUNT = 50;
const MAX_ID_LEN = 128;
const MAX_AGENT_ID_LEN = 128;
const MAX_CONTENT_SIZE = 65_536; // src/models/mod.rs
const MAX_METADATA_SIZE = 65_536;
const MAX_METADATA_DEPTH = 32;
const MAX_CITATIONS_PER_MEMORY = 64;
const MAX_SOURCE_URI_LEN = 4_096;
const VALID_SOURCE_URI_SCHEMES = ['uri:', 'doc:', 'file:'];
/** src/validate.rs VALID_SOURCES. */
export const VALID_SOURCES = ['user', 'nhi', 'claude', 'hook', 'api', 'cli', 'import', 'consolidation', 'system', 'chaos', 'notify'];
/** src/validate.rs RESERVED_AGENT_IDS (validate_agent_id refuses them on the wire). */
export const RESERVED_AGENT_IDS = ['daemon', 'system', 'federation-catchup', 'subscription-dispatch', 'ai:http-internal', 'ai:migrate', 'export-internal', 'governance-internal'];
const VALID_RELATIONS = ['related_to', 'supersedes', 'contradicts', 'derived_from', 'reflects_on', 'derives_from'];

/** src/validate.rs validate_title: checks the trimmed title. */
export function validateTitle(title: string): Verdict {
  const t = rustTrim(title);
  if (t === '') return 'title cannot be empty';
  if (chars(t) > MAX_TITLE_LEN) return `title exceeds max length of ${MAX_TITLE_LEN} characters`;
  if (!isCleanString(t)) return 'title contains invalid characters';
  return null;
}

/** src/validate.rs validate_content: emptiness on the trimmed text, the rest on the text as is. */
export function validateContent(content: string): Verdict {
  if (rustTrim(content) === '') return 'content cannot be empty';
  if (bytes(content) > MAX_CONTENT_SIZE) return `content exceeds max size of ${MAX_CONTENT_SIZE} bytes`;
  if (!isCleanString(content)) return 'content contains invalid characters';
  return null;
}

/** src/validate.rs validate_namespace: checks the trimmed namespace (a tab inside is allowed). */
export function validateNamespace(ns: string): Verdict {
  const t = rustTrim(ns);
  if (t === '') return 'namespace cannot be empty';
  if (chars(t) > MAX_NAMESPACE_LEN) return `namespace exceeds max length of ${MAX_NAMESPACE_LEN} characters`;
  if (t.includes('\\') || t.includes('\0')) return 'namespace cannot contain backslashes or null bytes';
  if (t.includes(' ')) return 'namespace cannot contain spaces (use hyphens or underscores)';
  if (!isCleanString(t)) return 'namespace contains invalid control characters';
  if (t.startsWith('/')) return "namespace cannot start with '/' (normalize input first)";
  if (t.endsWith('/')) return "namespace cannot end with '/' (normalize input first)";
  const segs = t.split('/');
  if (segs.some((x) => x === '')) return "namespace cannot contain empty segments (e.g. '//')";
  if (segs.some((x) => x === '.' || x === '..')) return "namespace segments '.' and '..' are not allowed";
  // src/models/namespace.rs namespace_depth: non-empty `/` segments.
  if (segs.length > MAX_NAMESPACE_DEPTH) return `namespace depth ${segs.length} exceeds max of ${MAX_NAMESPACE_DEPTH}`;
  return null;
}

/** src/validate.rs validate_source: exact member of VALID_SOURCES (no trimming). */
export function validateSource(source: string): Verdict {
  if (rustTrim(source) === '') return 'source cannot be empty';
  if (bytes(source) > MAX_SOURCE_LEN) return `source exceeds max length of ${MAX_SOURCE_LEN} bytes`;
  if (!VALID_SOURCES.includes(source)) return `invalid source '${source}' — must be one of: ${VALID_SOURCES.join(', ')}`;
  return null;
}

/** src/validate.rs validate_tags: each tag checked trimmed. */
export function validateTags(tags: string[]): Verdict {
  if (tags.length > MAX_TAGS_COUNT) return `too many tags (max ${MAX_TAGS_COUNT})`;
  for (const tag of tags) {
    const t = rustTrim(tag);
    if (t === '') return 'tags cannot contain empty strings';
    if (bytes(t) > MAX_TAG_LEN) return `tag '${[...t].slice(0, 20).join('')}...' exceeds max length of ${MAX_TAG_LEN} bytes`;
    if (!isCleanString(t)) return 'tag contains invalid characters';
  }
  return null;
}

/** src/validate.rs validate_id: 1..128 bytes of [A-Za-z0-9_:.@-], no `..`. */
export function validateId(id: string): Verdict {
  if (rustTrim(id) === '') return 'id cannot be empty';
  if (bytes(id) > MAX_ID_LEN) return `id exceeds max length of ${MAX_ID_LEN} bytes`;
  if (!isCleanString(id)) return 'id contains invalid characters';
  if (id.includes('..')) return "id may not contain '..' (path-traversal guard)";
  if (id.includes('/') || id.includes('\\')) return "id may not contain '/' or '\\' (path-traversal guard)";
  if (!/^[A-Za-z0-9_:.@-]*$/.test(id)) return 'id contains characters outside the allowed set [A-Za-z0-9_:.@-] (path-traversal guard)';
  return null;
}

/** src/validate.rs validate_agent_id (shape + reserved names): x-peer-id, sender_agent_id, x-agent-id. */
export function validateAgentId(agentId: string): Verdict {
  if (agentId === '') return 'agent_id cannot be empty';
  if (bytes(agentId) > MAX_AGENT_ID_LEN) return `agent_id exceeds max length of ${MAX_AGENT_ID_LEN} bytes`;
  for (const c of agentId) if (!/^[A-Za-z0-9_\-:@./]$/.test(c)) return `agent_id contains invalid character '${c}' (allowed: alphanumeric, _-:@./)`;
  if (agentId.includes('..')) return "agent_id may not contain '..' (path-traversal guard)";
  if (agentId.startsWith('/')) return "agent_id may not start with '/' (path-traversal guard)";
  if (RESERVED_AGENT_IDS.includes(agentId)) return `agent_id '${agentId}' is reserved for internal use and cannot be supplied by wire callers`;
  return null;
}

/** src/validate.rs validate_metadata: an object, <= 64 KiB re-serialised, nesting <= 32. */
export function validateMetadata(node: JNode): Verdict {
  if (node.t !== 'obj') return 'metadata must be a JSON object';
  const len = serdeLength(node);
  if (len > MAX_METADATA_SIZE) return `metadata exceeds max size of ${MAX_METADATA_SIZE} bytes (got ${len})`;
  const depth = jsonDepth(node);
  if (depth > MAX_METADATA_DEPTH) return `metadata nesting depth exceeds limit of ${MAX_METADATA_DEPTH} (got ${depth})`;
  return null;
}

/** src/validate.rs validate_source_uri. */
export function validateSourceUri(s: string): Verdict {
  const t = rustTrim(s);
  if (t === '') return 'source URI cannot be empty';
  if (bytes(t) > MAX_SOURCE_URI_LEN) return `source URI exceeds max length of ${MAX_SOURCE_URI_LEN} bytes`;
  if (!isCleanString(t)) return 'source URI contains invalid control characters';
  const prefix = VALID_SOURCE_URI_SCHEMES.find((p) => t.startsWith(p));
  if (!prefix) return `source URI must start with one of: ${VALID_SOURCE_URI_SCHEMES.join(', ')}`;
  if (rustTrim(t.slice(prefix.length)) === '') return `source URI scheme '${prefix}' has empty payload`;
  return null;
}

/** src/validate.rs validate_source_span: start < end. */
export const validateSourceSpan = (span: { start: number; end: number }): Verdict =>
  span.start >= span.end ? `source_span requires start < end (got start=${span.start}, end=${span.end})` : null;

/** src/validate.rs validate_citations / validate_citation. */
export function validateCitations(citations: UpMemory['citations']): Verdict {
  if (citations.length > MAX_CITATIONS_PER_MEMORY) return `too many citations: ${citations.length} exceeds cap of ${MAX_CITATIONS_PER_MEMORY}`;
  for (const c of citations) {
    const uri = validateSourceUri(c.uri);
    if (uri) return uri;
    if (!isValidRfc3339(c.accessed_at)) return `citation.accessed_at is not valid RFC3339: '${c.accessed_at}'`;
    if (c.hash !== undefined && !/^[0-9a-fA-F]{64}$/.test(c.hash)) return 'citation.hash must be 64 hex characters (SHA-256 digest)';
    if (c.span) {
      const sp = validateSourceSpan(c.span);
      if (sp) return sp;
    }
  }
  return null;
}

/**
 * src/validate.rs validate_memory (RequestValidator::validate_memory), the per-row gate of
 * push receive and of the catch-up poller, in upstream's order. Not checked upstream (so not
 * here): entity_id, persona_version, reflection_depth, confidence_signals,
 * confidence_decayed_at, version, and a past expires_at.
 */
export function validateMemory(mem: UpMemory, metadataNode: JNode): Verdict {
  const checks: Array<() => Verdict> = [
    () => validateId(mem.id),
    () => validateTitle(mem.title),
    () => validateContent(mem.content),
    () => validateNamespace(mem.namespace),
    () => validateSource(mem.source),
    () => validateTags(mem.tags),
    // validate_priority / validate_confidence.
    () => (mem.priority < 1 || mem.priority > 10 ? `priority must be between 1 and 10 (got ${mem.priority})` : null),
    () => (!Number.isFinite(mem.confidence) ? 'confidence must be a finite number' : mem.confidence < 0 || mem.confidence > 1 ? `confidence must be between 0.0 and 1.0 (got ${mem.confidence})` : null),
    () => (mem.access_count < 0 ? 'access_count cannot be negative' : null),
    () => (!isValidRfc3339(mem.created_at) ? 'created_at is not valid RFC3339' : null),
    () => (!isValidRfc3339(mem.updated_at) ? 'updated_at is not valid RFC3339' : null),
    () => (mem.last_accessed_at !== undefined && !isValidRfc3339(mem.last_accessed_at) ? 'last_accessed_at is not valid RFC3339' : null),
    () => (mem.expires_at !== undefined && !isValidRfc3339(mem.expires_at) ? 'expires_at is not valid RFC3339' : null),
    () => validateMetadata(metadataNode),
    () => validateCitations(mem.citations),
    () => (mem.source_uri !== undefined ? validateSourceUri(mem.source_uri) : null),
    () => (mem.source_span ? validateSourceSpan(mem.source_span) : null),
  ];
  for (const c of checks) {
    const v = c();
    if (v) return v;
  }
  return null;
}

/**
 * src/validate.rs validate_link (RequestValidator::validate_link_triple): both ids, the
 * relation (serde already limited it to MemoryLinkRelation), no self-link.
 */
export function validateLink(link: UpLink): Verdict {
  const s = validateId(link.source_id) ?? validateId(link.target_id);
  if (s) return s;
  if (!VALID_RELATIONS.includes(link.relation) && !/^[a-z0-9_]+$/.test(link.relation)) return `invalid relation '${link.relation}'`;
  if (link.source_id === link.target_id) return 'cannot link a memory to itself';
  return null;
}
