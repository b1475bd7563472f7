import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { applyUpdate, buildNewMemory } from '../../src/memory/input.js';
import {
  SOURCES,
  assertSafeJson,
  canonicalJson,
  validateAgentId,
  validateConfidence,
  validateContent,
  validateId,
  validateMemory,
  validateMetadata,
  validateNamespace,
  validatePriority,
  validateSource,
  validateTags,
  validateTier,
  validateTimestampField,
  validateTitle,
  type Memory,
} from '../../src/memory/model.js';
import { parseTimestamp } from '../../src/memory/time.js';

// The exact refusal each validator gives: field, code and message reach clients in the
// 400 body, so they are part of the API.

function refusal(fn: () => unknown): { field: string; code: string; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    const e = err as ValidationError;
    return { field: e.field, code: e.code, message: e.message };
  }
  throw new Error('expected a ValidationError, nothing was thrown');
}

const says = (fn: () => unknown) => refusal(fn).message;

function nested(depth: number): Record<string, unknown> {
  let v: Record<string, unknown> = {};
  for (let i = 1; i < depth; i++) v = { k: v };
  return v;
}

describe('field refusals', () => {
  it('ids', () => {
    expect(says(() => validateId(''))).toBe('id: must be a non-empty string');
    expect(says(() => validateId(7))).toBe('id: must be a non-empty string');
    expect(refusal(() => validateId('', 'memory_id')).field).toBe('memory_id');
    expect(says(() => validateId('a'.repeat(129)))).toBe('id: must be at most 128 bytes');
    expect(says(() => validateId('a b'))).toBe('id: may contain only [A-Za-z0-9_:.@-] and no ".."');
  });

  it('agent ids: 1-128 characters of the allowed set, strings only', () => {
    expect(validateAgentId('a'.repeat(128))).toBe('a'.repeat(128));
    expect(refusal(() => validateAgentId('a'.repeat(129)))).toEqual({ field: 'agent_id', code: 'INVALID_AGENT_ID', message: 'agent_id: must be 1-128 chars of [A-Za-z0-9_-:@./]' });
    expect(refusal(() => validateAgentId(123)).code).toBe('INVALID_AGENT_ID');
    expect(refusal(() => validateAgentId('')).code).toBe('INVALID_AGENT_ID');
    expect(refusal(() => validateAgentId('a b', 'metadata.agent_id')).field).toBe('metadata.agent_id');
  });

  it('titles', () => {
    expect(says(() => validateTitle(5))).toBe('title: must be a string');
    expect(says(() => validateTitle('   '))).toBe('title: must not be empty');
    expect(says(() => validateTitle('a'.repeat(513)))).toBe('title: must be at most 512 characters');
    expect(refusal(() => validateTitle('a\u0001b'))).toMatchObject({ field: 'title', message: 'title: must not contain control characters' });
  });

  it('content', () => {
    expect(says(() => validateContent(''))).toBe('content: must be a non-empty string');
    expect(says(() => validateContent('a'.repeat(65_537)))).toBe('content: must be at most 65536 bytes');
    expect(refusal(() => validateContent('a\u0000'))).toMatchObject({ field: 'content', code: 'INVALID_CONTENT', message: 'content: must not contain control characters other than \\n and \\t' });
    expect(says(() => validateContent(' \n\t\u0085 '))).toBe('content: must not be only whitespace');
  });

  it('namespaces', () => {
    expect(says(() => validateNamespace(5))).toBe('namespace: must be a non-empty string');
    expect(says(() => validateNamespace(''))).toBe('namespace: must be a non-empty string');
    expect(says(() => validateNamespace('a'.repeat(513)))).toBe('namespace: must be at most 512 characters');
    expect(says(() => validateNamespace('a b'))).toBe('namespace: must not contain spaces');
    expect(says(() => validateNamespace('a\\b'))).toBe('namespace: must not contain backslash or NUL');
    expect(says(() => validateNamespace('a\rb'))).toBe('namespace: must not contain control characters other than \\n and \\t');
    expect(says(() => validateNamespace(' \t '))).toBe('namespace: must not be only whitespace');
    expect(says(() => validateNamespace('a/b/c/d/e/f/g/h/i'))).toBe('namespace: must be at most 8 levels deep');
    expect(says(() => validateNamespace('a//b'))).toBe('namespace: must not have empty, "." or ".." segments');
  });

  it('tags, with the index of the offending tag', () => {
    expect(says(() => validateTags('a'))).toBe('tags: must be an array of strings');
    expect(says(() => validateTags(Array.from({ length: 51 }, (_, i) => `t${i}`)))).toBe('tags: must have at most 50 entries');
    expect(refusal(() => validateTags(['ok', '']))).toMatchObject({ field: 'tags[1]', message: 'tags[1]: must be a non-empty string' });
    expect(says(() => validateTags(['a'.repeat(129)]))).toBe('tags[0]: must be at most 128 bytes');
    expect(refusal(() => validateTags(['a\u0002']))).toMatchObject({ field: 'tags[0]', message: 'tags[0]: must not contain control characters' });
  });

  it('enumerations list what is allowed', () => {
    expect(says(() => validateTier('huge'))).toBe('tier: must be one of short, mid, long');
    expect(refusal(() => validateSource('x'))).toMatchObject({ field: 'source', message: `source: must be one of ${SOURCES.join(', ')}` });
    expect(SOURCES.join(', ')).toContain('user, nhi, claude');
  });

  it('numbers must be numbers, not numeric strings', () => {
    expect(says(() => validatePriority('5'))).toBe('priority: must be an integer in [1, 10]');
    expect(says(() => validateConfidence('0.5'))).toBe('confidence: must be a number in [0, 1]');
  });

  it('timestamps and metadata', () => {
    expect(says(() => validateTimestampField('created_at', 'yesterday'))).toBe('created_at: must be an RFC 3339 timestamp');
    expect(says(() => validateMetadata([]))).toBe('metadata: must be an object');
    expect(says(() => validateMetadata(nested(33)))).toBe('metadata: must be nested at most 32 levels');
    expect(says(() => validateMetadata({ k: 'a'.repeat(65_536) }))).toBe('metadata: must serialize to at most 65536 bytes');
  });
});

describe('body-wide refusals', () => {
  it('names where the bad text was: a value or a key', () => {
    expect(refusal(() => assertSafeJson({ a: 'x\u0000' }))).toEqual({ field: 'body', code: 'NUL_CHARACTER', message: 'body: must not contain NUL (\\u0000)' });
    expect(refusal(() => assertSafeJson({ 'x\u0000': 1 }))).toMatchObject({ field: 'key', code: 'NUL_CHARACTER' });
    expect(refusal(() => assertSafeJson(['\uD800']))).toEqual({ field: 'body', code: 'INVALID_UNICODE', message: 'body: must be valid Unicode (lone surrogate)' });
    expect(refusal(() => assertSafeJson({ '\uDC00': 1 }))).toMatchObject({ field: 'key', code: 'INVALID_UNICODE' });
  });

  it('non-finite numbers and the __proto__ key', () => {
    expect(refusal(() => assertSafeJson({ n: [Infinity] }))).toEqual({ field: 'body', code: 'INVALID_NUMBER', message: 'body: numbers must be finite' });
    expect(refusal(() => assertSafeJson(JSON.parse('{"a":{"__proto__":{}}}')))).toEqual({ field: '__proto__', code: 'FORBIDDEN_KEY', message: '__proto__: is a reserved key' });
  });
});

const raw = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: 'mem-1',
  tier: 'mid',
  namespace: 'global',
  title: 'T',
  content: 'C',
  tags: [],
  priority: 5,
  confidence: 0.5,
  source: 'api',
  access_count: 0,
  created_at: '2024-01-01T00:00:00Z',
  updated_at: '2024-01-02T00:00:00Z',
  ...over,
});

describe('validateMemory', () => {
  it('refuses anything but an object', () => {
    for (const v of [null, 'x', [], 3]) expect(refusal(() => validateMemory(v))).toMatchObject({ field: 'memory', message: 'memory: must be an object' });
  });

  it('drops null optional and unknown keys instead of failing on them', () => {
    const m = validateMemory(raw({ last_accessed_at: null, expires_at: null, future_field: null, kept: 1 }));
    expect(Object.keys(m)).not.toContain('last_accessed_at');
    expect(Object.keys(m)).not.toContain('expires_at');
    expect(Object.keys(m)).not.toContain('future_field');
    expect(m.kept).toBe(1);
  });
});

describe('canonicalJson', () => {
  it('sorts keys whatever order they arrive in', () => {
    expect(canonicalJson({ d: 1, c: 2, b: 3, a: 4 })).toBe('{"a":4,"b":3,"c":2,"d":1}');
    expect(canonicalJson({ b: 1, a: 2, c: 3 })).toBe('{"a":2,"b":1,"c":3}');
    expect(canonicalJson({ a: 1, c: 2, b: 3 })).toBe('{"a":1,"b":3,"c":2}');
  });
});

const NOW = parseTimestamp('2024-06-01T00:00:00Z')!;
const create = (body: Record<string, unknown>, agentId?: string) => buildNewMemory({ title: 'T', content: 'C', ...body }, { agentId, nowMicros: NOW });

describe('create refusals and defaults', () => {
  it('refuses a body that is not an object, and server-owned fields', () => {
    expect(refusal(() => buildNewMemory([], { agentId: undefined, nowMicros: NOW }))).toEqual({ field: 'body', code: 'INVALID_BODY', message: 'body: must be a JSON object' });
    expect(refusal(() => create({ created_at: '2024-01-01T00:00:00Z' }))).toEqual({
      field: 'created_at',
      code: 'READ_ONLY_FIELD',
      message: 'created_at: is set by the server and cannot be written',
    });
  });

  it('metadata null is empty metadata with the author recorded', () => {
    expect(create({ metadata: null }, 'alice').metadata).toEqual({ agent_id: 'alice' });
  });

  it('scope: one of upstream VALID_SCOPES (upstream src/validate.rs: validate_scope)', () => {
    expect(create({ scope: 'team' }).metadata.scope).toBe('team');
    expect(refusal(() => create({ scope: 's' }))).toEqual({ field: 'scope', code: 'INVALID_SCOPE', message: 'scope: must be one of private, team, unit, org, collective' });
  });

  it('expires_at null falls back to ttl_secs, ttl_secs null to the tier default', () => {
    expect(create({ expires_at: null, ttl_secs: 60 }).expires_at).toBe('2024-06-01T00:01:00.000000+00:00');
    expect(create({ ttl_secs: null, tier: 'short' }).expires_at).toBe('2024-06-01T06:00:00.000000+00:00');
    expect(create({ expires_at: null, ttl_secs: null, tier: 'long' }).expires_at).toBeUndefined();
  });

  it('ttl_secs: a whole number of seconds up to one year (upstream src/validate.rs: validate_ttl_secs)', () => {
    const max = 365 * 86400;
    expect(parseTimestamp(create({ ttl_secs: max }).expires_at)).toBe(NOW + max * 1e6);
    expect(refusal(() => create({ ttl_secs: max + 1 }))).toEqual({ field: 'ttl_secs', code: 'INVALID_TTL_SECS', message: `ttl_secs: must be an integer in [1, ${max}]` });
    expect(refusal(() => create({ ttl_secs: 1.5 })).field).toBe('ttl_secs');
  });

  it('create-only inputs and null unknown keys do not become memory fields', () => {
    const m = create({ agent_id: 'bob', ttl_secs: 60, scope: 'org', extra: null, kept: 'x' });
    expect(Object.keys(m)).not.toContain('agent_id');
    expect(Object.keys(m)).not.toContain('ttl_secs');
    expect(Object.keys(m)).not.toContain('scope');
    expect(Object.keys(m)).not.toContain('extra');
    expect(m.kept).toBe('x');
    expect(m.metadata).toEqual({ agent_id: 'bob', scope: 'org' });
  });
});

describe('update refusals', () => {
  const existing = (metadata: Record<string, unknown> = { agent_id: 'alice' }): Memory => create({ id: 'mem-1', metadata }, 'alice');

  it('refuses a body that is not an object, a changed id, an empty update', () => {
    expect(refusal(() => applyUpdate(existing(), 'x', { nowMicros: NOW }))).toMatchObject({ field: 'body', code: 'INVALID_BODY' });
    expect(refusal(() => applyUpdate(existing(), { id: 'other' }, { nowMicros: NOW }))).toEqual({ field: 'id', code: 'READ_ONLY_FIELD', message: 'id: cannot be changed' });
    expect(refusal(() => applyUpdate(existing(), { id: 'mem-1' }, { nowMicros: NOW }))).toEqual({ field: 'body', code: 'EMPTY_UPDATE', message: 'body: names no field to update' });
  });

  it('validates confidence, source and expires_at like a create', () => {
    expect(refusal(() => applyUpdate(existing(), { confidence: 2 }, { nowMicros: NOW })).field).toBe('confidence');
    expect(refusal(() => applyUpdate(existing(), { source: 'nope' }, { nowMicros: NOW })).field).toBe('source');
    expect(says(() => applyUpdate(existing(), { expires_at: 'soon' }, { nowMicros: NOW }))).toBe('expires_at: must be an RFC 3339 timestamp');
  });

  it('create-only inputs cannot be updated', () => {
    expect(refusal(() => applyUpdate(existing(), { ttl_secs: 5 }, { nowMicros: NOW }))).toEqual({
      field: 'ttl_secs',
      code: 'READ_ONLY_FIELD',
      message: 'ttl_secs: cannot be changed by an update',
    });
  });

  it('a memory without an author gains none on update', () => {
    const m = { ...existing(), metadata: {} } as Memory;
    const next = applyUpdate(m, { metadata: { a: 1 } }, { nowMicros: NOW });
    expect(next.metadata).toStrictEqual({ a: 1 });
  });
});
