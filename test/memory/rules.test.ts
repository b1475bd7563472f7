import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { applyUpdate, buildNewMemory } from '../../src/memory/input.js';
import { validateMemory, type Memory } from '../../src/memory/model.js';
import { CONFIDENCE_SOURCES, MEMORY_KINDS, isCleanString, rustTrim, validateAgentId } from '../../src/memory/rules.js';
import { parseTimestamp } from '../../src/memory/time.js';

/*
 * Every rule of src/memory/rules.ts, table-driven: each case is named after the upstream
 * rule it proves (upstream ai-memory 0.7.0, src/validate.rs and the serde types of
 * src/models/memory.rs). Each refusal case runs through both paths that use the rules:
 * the receive path (validateMemory, for pushed and pulled rows) and the client create path
 * (buildNewMemory), and must give the same stable code and field on both.
 */

const NOW = parseTimestamp('2026-01-01T00:00:00Z')!;
const TS = '2025-12-31T00:00:00.000000+00:00';

const wire = (over: Record<string, unknown>): Record<string, unknown> => ({
  id: 'mem-1', tier: 'mid', namespace: 'global', title: 'T', content: 'C', tags: [], priority: 5, confidence: 0.5,
  source: 'api', access_count: 0, created_at: TS, updated_at: TS, ...over,
});
const create = (over: Record<string, unknown>, agentId?: string) => buildNewMemory({ title: 'T', content: 'C', ...over }, { agentId, nowMicros: NOW });

function refusal(fn: () => unknown): { code: string; field: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    const e = err as ValidationError;
    return { code: e.code, field: e.field };
  }
  throw new Error('expected a ValidationError, nothing was thrown');
}

const citation = (over: Record<string, unknown> = {}) => ({ uri: 'doc:paper-1', accessed_at: '2025-01-01T00:00:00Z', ...over });
const signals = { source_age_days: 1.5, atom_derivation: false, prior_corroboration_count: 2, freshness_factor: 0.9, baseline_per_source: 0.5 };
const nested = (depth: number) => {
  let v: Record<string, unknown> = {};
  for (let i = 1; i < depth; i++) v = { k: v };
  return v;
};

type Refused = [rule: string, over: Record<string, unknown>, code: string, field: string];

// Fields a client may write: checked on the receive path and the create path alike.
const refused: Refused[] = [
  ['validate_id: only [A-Za-z0-9_:.@-]', { id: 'a/b' }, 'INVALID_ID', 'id'],
  ['validate_id: no ".." (path-traversal guard)', { id: 'a..b' }, 'INVALID_ID', 'id'],
  ['validate_id: at most 128 bytes', { id: 'a'.repeat(129) }, 'INVALID_ID', 'id'],
  ['validate_id: not empty', { id: '' }, 'INVALID_ID', 'id'],
  ['Tier serde: short | mid | long, exact case', { tier: 'Long' }, 'INVALID_TIER', 'tier'],
  ['validate_title: not empty after trim', { title: '   ' }, 'INVALID_TITLE', 'title'],
  ['validate_title: trim strips U+0085, so a NEL-only title is empty', { title: ' \u0085 ' }, 'INVALID_TITLE', 'title'],
  ['validate_title: is_clean_string refuses U+0085 inside', { title: 'a\u0085b' }, 'INVALID_TITLE', 'title'],
  ['validate_title: is_clean_string refuses \\r inside', { title: 'a\rb' }, 'INVALID_TITLE', 'title'],
  ['validate_title: is_clean_string refuses C1 U+009F', { title: 'a\u009fb' }, 'INVALID_TITLE', 'title'],
  ['validate_title: at most 512 characters', { title: 'x'.repeat(513) }, 'INVALID_TITLE', 'title'],
  ['Memory serde: title is a String', { title: 5 }, 'INVALID_TITLE', 'title'],
  ['validate_content: not whitespace-only', { content: ' \n\t ' }, 'INVALID_CONTENT', 'content'],
  ['validate_content: trim strips U+3000, so ideographic spaces are whitespace-only', { content: '\u3000\u3000' }, 'INVALID_CONTENT', 'content'],
  ['validate_content: is_clean_string refuses \\r (untrimmed, even at the end)', { content: 'line\r\n' }, 'INVALID_CONTENT', 'content'],
  ['validate_content: is_clean_string refuses ESC', { content: 'a\u001b[0m' }, 'INVALID_CONTENT', 'content'],
  ['validate_content: is_clean_string refuses DEL', { content: 'a\u007f' }, 'INVALID_CONTENT', 'content'],
  ['validate_content: is_clean_string refuses C1 U+0085', { content: 'a\u0085b' }, 'INVALID_CONTENT', 'content'],
  ['validate_content: at most MAX_CONTENT_SIZE (65,536) bytes', { content: 'é'.repeat(32_768) + 'a' }, 'INVALID_CONTENT', 'content'],
  ['validate_namespace: no spaces', { namespace: 'a b' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_namespace: no backslash', { namespace: 'a\\b' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_namespace: is_clean_string refuses \\r inside', { namespace: 'a\rb' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_namespace: is_clean_string refuses U+0085 inside', { namespace: 'a\u0085b' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_namespace: no leading /', { namespace: '/a' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_namespace: no trailing /', { namespace: 'a/' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_namespace: no empty segment', { namespace: 'a//b' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_namespace: no "." segment', { namespace: 'a/./b' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_namespace: no ".." segment', { namespace: 'a/../b' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_namespace: depth at most MAX_NAMESPACE_DEPTH (8)', { namespace: 'a/b/c/d/e/f/g/h/i' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_namespace: at most 512 characters', { namespace: 'n'.repeat(513) }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_namespace: not empty after trim', { namespace: ' \t ' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_source: VALID_SOURCES only', { source: 'robot' }, 'INVALID_SOURCE', 'source'],
  ['validate_source: exact value, no padding', { source: ' api' }, 'INVALID_SOURCE', 'source'],
  ['validate_tags: at most 50', { tags: Array.from({ length: 51 }, (_, i) => `t${i}`) }, 'INVALID_TAGS', 'tags'],
  ['validate_tags: no empty tag after trim', { tags: ['ok', '  '] }, 'INVALID_TAGS', 'tags[1]'],
  ['validate_tags: at most 128 bytes after trim', { tags: ['a'.repeat(129)] }, 'INVALID_TAGS', 'tags[0]'],
  ['validate_tags: is_clean_string refuses \\r inside', { tags: ['a\rb'] }, 'INVALID_TAGS', 'tags[0]'],
  ['validate_tags: is_clean_string refuses C1 inside', { tags: ['a\u0090b'] }, 'INVALID_TAGS', 'tags[0]'],
  ['Memory serde: tags is a Vec<String>', { tags: [1] }, 'INVALID_TAGS', 'tags[0]'],
  ['validate_priority: 1..=10', { priority: 11 }, 'INVALID_PRIORITY', 'priority'],
  ['Memory serde: priority is an i32, not a string', { priority: '5' }, 'INVALID_PRIORITY', 'priority'],
  ['Memory serde: priority is an integer', { priority: 5.5 }, 'INVALID_PRIORITY', 'priority'],
  ['validate_confidence: 0.0..=1.0', { confidence: 1.01 }, 'INVALID_CONFIDENCE', 'confidence'],
  ['validate_metadata: a JSON object', { metadata: [] }, 'INVALID_METADATA', 'metadata'],
  ['validate_metadata: nesting at most 32', { metadata: nested(33) }, 'INVALID_METADATA', 'metadata'],
  ['validate_metadata: at most 65,536 bytes serialized', { metadata: { k: 'x'.repeat(65_536) } }, 'INVALID_METADATA', 'metadata'],
  ['MemoryKind serde: unknown value', { memory_kind: 'fact' }, 'INVALID_MEMORY_KIND', 'memory_kind'],
  ['MemoryKind serde: snake_case only', { memory_kind: 'Observation' }, 'INVALID_MEMORY_KIND', 'memory_kind'],
  ['MemoryKind serde: a string', { memory_kind: 1 }, 'INVALID_MEMORY_KIND', 'memory_kind'],
  ['ConfidenceSource serde: unknown value', { confidence_source: 'guessed' }, 'INVALID_CONFIDENCE_SOURCE', 'confidence_source'],
  ['Memory serde: reflection_depth is an i32', { reflection_depth: '1' }, 'INVALID_REFLECTION_DEPTH', 'reflection_depth'],
  ['Memory serde: reflection_depth is an integer', { reflection_depth: 1.5 }, 'INVALID_REFLECTION_DEPTH', 'reflection_depth'],
  ['Memory serde: reflection_depth fits an i32', { reflection_depth: 2 ** 31 }, 'INVALID_REFLECTION_DEPTH', 'reflection_depth'],
  ['Memory serde: persona_version is an Option<i32>', { persona_version: 'v2' }, 'INVALID_PERSONA_VERSION', 'persona_version'],
  ['Memory serde: entity_id is an Option<String>', { entity_id: 7 }, 'INVALID_ENTITY_ID', 'entity_id'],
  ['Memory serde: citations is a Vec<Citation>', { citations: 'doc:x' }, 'INVALID_CITATIONS', 'citations'],
  ['Citation serde: an object', { citations: ['doc:x'] }, 'INVALID_CITATIONS', 'citations[0]'],
  ['Citation serde: uri required', { citations: [{ url: 'doc:x', accessed_at: TS }] }, 'INVALID_CITATIONS', 'citations[0].uri'],
  ['validate_citation -> validate_source_uri: a uri:/doc:/file: scheme', { citations: [citation({ uri: 'https://x' })] }, 'INVALID_CITATIONS', 'citations[0].uri'],
  ['validate_citation -> validate_source_uri: a payload after the scheme', { citations: [citation({ uri: 'doc:  ' })] }, 'INVALID_CITATIONS', 'citations[0].uri'],
  ['validate_citation -> validate_source_uri: is_clean_string', { citations: [citation({ uri: 'doc:a\rb' })] }, 'INVALID_CITATIONS', 'citations[0].uri'],
  ['validate_citation: accessed_at required', { citations: [{ uri: 'doc:x' }] }, 'INVALID_CITATIONS', 'citations[0].accessed_at'],
  ['validate_citation: accessed_at is RFC 3339', { citations: [citation({ accessed_at: 'yesterday' })] }, 'INVALID_CITATIONS', 'citations[0].accessed_at'],
  ['validate_citation: hash is 64 hex characters', { citations: [citation({ hash: 'abc' })] }, 'INVALID_CITATIONS', 'citations[0].hash'],
  ['validate_citation -> validate_source_span: start < end', { citations: [citation({ span: { start: 2, end: 2 } })] }, 'INVALID_CITATIONS', 'citations[0].span'],
  ['validate_citations: at most 64', { citations: Array.from({ length: 65 }, () => citation()) }, 'INVALID_CITATIONS', 'citations'],
  ['validate_source_uri: a uri:/doc:/file: scheme', { source_uri: 'http://x' }, 'INVALID_SOURCE_URI', 'source_uri'],
  ['validate_source_uri: a payload after the scheme', { source_uri: 'file:' }, 'INVALID_SOURCE_URI', 'source_uri'],
  ['validate_source_uri: at most 4,096 bytes', { source_uri: `uri:${'x'.repeat(4093)}` }, 'INVALID_SOURCE_URI', 'source_uri'],
  ['Memory serde: source_uri is an Option<String>', { source_uri: 5 }, 'INVALID_SOURCE_URI', 'source_uri'],
  ['validate_source_span: start < end', { source_span: { start: 3, end: 1 } }, 'INVALID_SOURCE_SPAN', 'source_span'],
  ['SourceSpan serde: start is a usize (not negative)', { source_span: { start: -1, end: 1 } }, 'INVALID_SOURCE_SPAN', 'source_span.start'],
  ['SourceSpan serde: end required', { source_span: { start: 0 } }, 'INVALID_SOURCE_SPAN', 'source_span.end'],
  ['SourceSpan serde: an object, not an array', { source_span: [0, 1] }, 'INVALID_SOURCE_SPAN', 'source_span'],
  ['ConfidenceSignals serde: an object', { confidence_signals: 'high' }, 'INVALID_CONFIDENCE_SIGNALS', 'confidence_signals'],
  ['ConfidenceSignals serde: every field required', { confidence_signals: { ...signals, freshness_factor: undefined } }, 'INVALID_CONFIDENCE_SIGNALS', 'confidence_signals.freshness_factor'],
  ['ConfidenceSignals serde: atom_derivation is a bool', { confidence_signals: { ...signals, atom_derivation: 'no' } }, 'INVALID_CONFIDENCE_SIGNALS', 'confidence_signals.atom_derivation'],
  ['ConfidenceSignals serde: prior_corroboration_count is an i64', { confidence_signals: { ...signals, prior_corroboration_count: 1.5 } }, 'INVALID_CONFIDENCE_SIGNALS', 'confidence_signals.prior_corroboration_count'],
];

// Server-owned fields: only a replicated row carries them.
const refusedOnReceive: Refused[] = [
  ['validate_memory: access_count >= 0', { access_count: -1 }, 'INVALID_ACCESS_COUNT', 'access_count'],
  ['validate_memory: created_at is RFC 3339', { created_at: 'yesterday' }, 'INVALID_TIMESTAMP', 'created_at'],
  ['validate_memory: updated_at is RFC 3339', { updated_at: '2026-02-30T00:00:00Z' }, 'INVALID_TIMESTAMP', 'updated_at'],
  ['validate_memory: last_accessed_at is RFC 3339', { last_accessed_at: 12 }, 'INVALID_TIMESTAMP', 'last_accessed_at'],
  ['validate_memory: expires_at is RFC 3339', { expires_at: 'soon' }, 'INVALID_TIMESTAMP', 'expires_at'],
  ['memfed: version 1..2^31-1', { version: 0 }, 'INVALID_VERSION', 'version'],
  ['Memory serde: tags required', { tags: undefined }, 'INVALID_TAGS', 'tags'],
];

type Accepted = [rule: string, over: Record<string, unknown>];

// What upstream accepts (memfed used to refuse some of it), stored exactly as sent.
const accepted: Accepted[] = [
  ['validate_title: checked trimmed, so a trailing U+0085 is trimmed away and kept', { title: 'title\u0085' }],
  ['validate_title: checked trimmed, so a trailing \\r\\n is trimmed away and kept', { title: ' t\r\n' }],
  ['validate_title / is_clean_string: \\n and \\t allowed', { title: 'a\nb\tc' }],
  ['validate_content / is_clean_string: \\n and \\t allowed', { content: '\ta\nb ' }],
  ['validate_namespace: a tab inside is allowed', { namespace: 'team\tone' }],
  ['validate_namespace: a newline inside is allowed', { namespace: 'team\none' }],
  ['validate_namespace: only U+0020 is a refused space (U+00A0 allowed)', { namespace: 'team/a\u00a0b' }],
  ['validate_namespace: checked trimmed, so surrounding whitespace is kept', { namespace: ' team/a ' }],
  ['validate_namespace: "." inside a segment is allowed', { namespace: 'a/.hidden/b..c' }],
  ['validate_namespace: depth 8', { namespace: 'a/b/c/d/e/f/g/h' }],
  ['validate_tags: checked trimmed, so padded tags are kept', { tags: ['  x  ', 'y\r'] }],
  ['validate_content: exactly MAX_CONTENT_SIZE bytes', { content: 'é'.repeat(32_768) }],
  ...MEMORY_KINDS.map((k): Accepted => [`MemoryKind serde: ${k}`, { memory_kind: k }]),
  ...CONFIDENCE_SOURCES.map((k): Accepted => [`ConfidenceSource serde: ${k}`, { confidence_source: k }]),
  ['Memory serde: reflection_depth is any i32', { reflection_depth: -3 }],
  ['Memory serde: persona_version is an i32', { persona_version: 4, entity_id: 'ent-1' }],
  ['validate_citation: full citation (hash in either case, span)', { citations: [citation({ hash: 'A'.repeat(32) + 'f'.repeat(32), span: { start: 0, end: 5 } }), citation({ uri: 'file:/tmp/x', hash: null, span: null })] }],
  ['validate_citations: 64 entries', { citations: Array.from({ length: 64 }, () => citation()) }],
  ['validate_source_uri: uri: form', { source_uri: 'uri:https://example.org/a' }],
  ['validate_source_span: start < end', { source_span: { start: 0, end: 1 } }],
  ['ConfidenceSignals serde: all five fields', { confidence_signals: signals }],
  ['Memory serde: null optional fields read as their default (memfed drops them)', { memory_kind: null, citations: null, source_span: null, confidence_signals: null, persona_version: null }],
];

describe('upstream validation rules, receive path (validateMemory) and client create path (buildNewMemory)', () => {
  it.each(refused)('%s', (_rule, over, code, field) => {
    expect(refusal(() => validateMemory(wire(over)))).toEqual({ code, field });
    expect(refusal(() => create(over))).toEqual({ code, field });
  });

  it.each(refusedOnReceive)('%s', (_rule, over, code, field) => {
    expect(refusal(() => validateMemory(wire(over)))).toEqual({ code, field });
  });

  it.each(accepted)('%s', (_rule, over) => {
    const received = validateMemory(wire(over));
    const created = create(over);
    for (const [k, v] of Object.entries(over)) {
      if (v === null) {
        expect(k in received).toBe(false);
        expect(k in created).toBe(false);
      } else {
        expect(received[k], k).toEqual(v);
        expect(created[k], k).toEqual(v);
      }
    }
  });
});

describe('client update path (applyUpdate) uses the same rules', () => {
  const existing = (): Memory => create({ id: 'm1' }, 'alice');
  const update = (body: Record<string, unknown>) => applyUpdate(existing(), body, { nowMicros: NOW + 1 });

  it.each(refused.filter(([, over]) => !('id' in over)))('%s', (_rule, over, code, field) => {
    expect(refusal(() => update(over))).toEqual({ code, field });
  });

  it('point 5: stores the title as sent, validated trimmed', () => {
    expect(update({ title: '  spaced  ' }).title).toBe('  spaced  ');
  });

  it('validate_update: expires_at format only, a past date is allowed', () => {
    expect(update({ expires_at: '2020-01-01T00:00:00Z' }).expires_at).toBe('2020-01-01T00:00:00.000000+00:00');
    expect(refusal(() => update({ expires_at: 'later' }))).toEqual({ code: 'INVALID_EXPIRES_AT', field: 'expires_at' });
  });
});

describe('create-only rules (upstream src/validate.rs: validate_create)', () => {
  it('validate_expires_at: not in the past on create', () => {
    expect(refusal(() => create({ expires_at: '2025-01-01T00:00:00Z' }))).toEqual({ code: 'INVALID_EXPIRES_AT', field: 'expires_at' });
    expect(refusal(() => create({ expires_at: 'tomorrow' }))).toEqual({ code: 'INVALID_EXPIRES_AT', field: 'expires_at' });
    expect(create({ expires_at: '2027-01-01T00:00:00Z' }).expires_at).toBe('2027-01-01T00:00:00.000000+00:00');
  });

  it('validate_ttl_secs: 1 s to one year, checked even when expires_at wins', () => {
    expect(refusal(() => create({ ttl_secs: 365 * 86400 + 1 }))).toEqual({ code: 'INVALID_TTL_SECS', field: 'ttl_secs' });
    expect(refusal(() => create({ ttl_secs: 0, expires_at: '2027-01-01T00:00:00Z' }))).toEqual({ code: 'INVALID_TTL_SECS', field: 'ttl_secs' });
  });

  it('validate_scope: VALID_SCOPES only', () => {
    expect(create({ scope: 'collective' }).metadata.scope).toBe('collective');
    expect(refusal(() => create({ scope: 'world' }))).toEqual({ code: 'INVALID_SCOPE', field: 'scope' });
  });

  it('validate_agent_id: shape, path-traversal guard and RESERVED_AGENT_IDS', () => {
    expect(validateAgentId('ai:claude@host:pid-1')).toBe('ai:claude@host:pid-1');
    expect(validateAgentId('spiffe://example.org/ns/prod')).toBe('spiffe://example.org/ns/prod');
    for (const bad of ['a b', '', 'a'.repeat(129), '../etc/key', '/etc/passwd', 'daemon', 'system', 'federation-catchup', 'ai:http-internal']) {
      expect(refusal(() => validateAgentId(bad)), bad).toEqual({ code: 'INVALID_AGENT_ID', field: 'agent_id' });
    }
    expect(refusal(() => create({ agent_id: 'daemon' }))).toEqual({ code: 'INVALID_AGENT_ID', field: 'agent_id' });
  });
});

describe('string primitives', () => {
  it('rustTrim strips what Rust str::trim strips (Unicode White_Space), not what JavaScript trim strips', () => {
    expect(rustTrim('\u0085\t\n\u000b\u000c\r \u00a0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000x\u3000\u0085')).toBe('x');
    expect(rustTrim('\ufeffx\ufeff')).toBe('\ufeffx\ufeff');
    expect(rustTrim('  a b  ')).toBe('a b');
  });

  it('isCleanString refuses exactly the Cc characters other than \\n and \\t', () => {
    for (let c = 0; c <= 0xa0; c++) {
      const ch = String.fromCharCode(c);
      const control = c < 0x20 || (c >= 0x7f && c <= 0x9f);
      expect(isCleanString(`a${ch}b`), `U+${c.toString(16)}`).toBe(!control || ch === '\n' || ch === '\t');
    }
    expect(isCleanString('\u200b\u2028\ufeff😀')).toBe(true);
  });
});

describe('deliberate differences from upstream (docs/api.md, Validation rules)', () => {
  it('memfed: an integer-valued float (5.0) is an integer, since JSON.parse cannot tell them apart; served as 5', () => {
    const m = validateMemory(JSON.parse('{"id":"f1","tier":"mid","namespace":"g","title":"t","content":"c","tags":[],"priority":5.0,"confidence":1,"source":"api","access_count":0.0,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","reflection_depth":2.0}'));
    expect(JSON.stringify([m.priority, m.access_count, m.reflection_depth])).toBe('[5,0,2]');
  });

  it('memfed: integers above 2^53-1 are refused where upstream takes any i64/usize', () => {
    expect(refusal(() => validateMemory(wire({ access_count: 2 ** 53 })))).toEqual({ code: 'INVALID_ACCESS_COUNT', field: 'access_count' });
    expect(refusal(() => validateMemory(wire({ source_span: { start: 0, end: 2 ** 53 } })))).toEqual({ code: 'INVALID_SOURCE_SPAN', field: 'source_span.end' });
  });
});
