import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { checkBody } from '../../src/api/body.js';
import { createMemoryBody, updateMemoryBody } from '../../src/api/memory-bodies.js';
import { ApiError, ValidationError } from '../../src/errors.js';
import { applyUpdate, buildNewMemory } from '../../src/memory/input.js';

const now = Date.parse('2026-01-01T00:00:00Z') * 1000;
const build = (body: unknown) => buildNewMemory(body, { agentId: undefined, nowMicros: now });
const hash = 'a'.repeat(64);

/*
 * The documented body schemas are checked before the field rules, so they must never be
 * stricter than those rules: every body the rules accept, the schema accepts too.
 */
const acceptedCreates: Record<string, unknown> = {
  'minimal': { title: 't', content: 'c' },
  'title of 512 characters plus surrounding spaces (checked trimmed)': { title: `  ${'é'.repeat(512)}  `, content: 'c' },
  'astral characters': { title: '🦀'.repeat(100), content: '🦀'.repeat(1000), tags: ['🦀'] },
  'every default given explicitly': { id: 'm-1', tier: 'long', namespace: 'a/b/c', title: 't', content: 'c', tags: ['x'], priority: 10, confidence: 0, source: 'cli', metadata: { deep: { er: [1, 2] } } },
  'nulls where the rules take null for absent': { title: 't', content: 'c', metadata: null, ttl_secs: null, scope: null, expires_at: null, memory_kind: null, entity_id: null },
  'ttl, scope and an agent id': { title: 't', content: 'c', ttl_secs: 60, scope: 'team', agent_id: 'agent-1' },
  'typed optional fields': { title: 't', content: 'c', memory_kind: 'claim', confidence_source: 'calibrated', reflection_depth: -3, persona_version: 2, entity_id: 'e', source_uri: 'uri:x', source_span: { start: 0, end: 4 }, citations: [{ uri: 'doc:y', accessed_at: '2025-01-01T00:00:00Z', hash, span: { start: 1, end: 2 } }], confidence_signals: { source_age_days: 1, freshness_factor: 0.5, baseline_per_source: 0.9, atom_derivation: true, prior_corroboration_count: 3 } },
  'unknown keys (kept)': { title: 't', content: 'c', colour: 'blue', nested: { any: ['thing'] }, dropped: null },
};

const refusedCreates: Record<string, [unknown, string]> = {
  'not an object': [[], 'INVALID_BODY'],
  'no title': [{ content: 'c' }, 'INVALID_TITLE'],
  'empty content': [{ title: 't', content: '' }, 'INVALID_CONTENT'],
  'tier null': [{ title: 't', content: 'c', tier: null }, 'INVALID_TIER'],
  '51 tags': [{ title: 't', content: 'c', tags: Array.from({ length: 51 }, (_, i) => `t${i}`) }, 'INVALID_TAGS'],
  'priority 11': [{ title: 't', content: 'c', priority: 11 }, 'INVALID_PRIORITY'],
  'server-owned version': [{ title: 't', content: 'c', version: 2 }, 'READ_ONLY_FIELD'],
  'ttl of a second too many': [{ title: 't', content: 'c', ttl_secs: 365 * 86_400 + 1 }, 'INVALID_TTL_SECS'],
  'unknown scope': [{ title: 't', content: 'c', scope: 'world' }, 'INVALID_SCOPE'],
  'id with a slash': [{ id: 'a/b', title: 't', content: 'c' }, 'INVALID_ID'],
};

describe('memory body schemas', () => {
  for (const [name, body] of Object.entries(acceptedCreates)) {
    it(`accept what the field rules accept on create: ${name}`, () => {
      expect(() => build(body)).not.toThrow();
      expect(createMemoryBody.safeParse(body).success).toBe(true);
    });
  }

  for (const [name, [body, code]] of Object.entries(refusedCreates)) {
    it(`refuse with the field rule's code on create: ${name}`, () => {
      expect(createMemoryBody.safeParse(body).success).toBe(false);
      let err: unknown;
      try {
        checkBody(createMemoryBody, body, () => build(body));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).code).toBe(code);
    });
  }

  it('accept on update what the field rules accept, null clearing optional keys', () => {
    const current = build({ title: 't', content: 'c', colour: 'blue', expires_at: '2030-01-01T00:00:00Z' });
    for (const body of [{ title: '  u  ' }, { expires_at: null, colour: null }, { metadata: null }, { id: current.id, tags: [] }, { memory_kind: 'event', citations: null }]) {
      expect(() => applyUpdate(current, body, { nowMicros: now + 1 }), JSON.stringify(body)).not.toThrow();
      expect(updateMemoryBody.safeParse(body).success, JSON.stringify(body)).toBe(true);
    }
    for (const key of ['agent_id', 'ttl_secs', 'scope', 'created_at']) expect(updateMemoryBody.safeParse({ [key]: 'x' }).success, key).toBe(false);
  });
});

describe('checkBody', () => {
  const schema = z.object({ n: z.number() });

  it('returns the validator\'s value when the schema accepts the body', () => {
    expect(checkBody(schema, { n: 1 }, () => 'built')).toBe('built');
  });

  it('answers with the validator\'s own refusal when both refuse', () => {
    const refusal = new ValidationError('n', 'must be a number', 'INVALID_N');
    expect(() => checkBody(schema, { n: 'x' }, () => { throw refusal; })).toThrow(refusal);
  });

  it('refuses with the given code, naming the field, a body only the schema refuses', () => {
    let err: unknown;
    try {
      checkBody(schema, { n: 'x' }, () => 'built', 'INVALID_PUSH');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: 'INVALID_PUSH', details: { field: 'n' } });
  });
});
