import { describe, it, expect } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { applyUpdate, buildNewMemory } from '../../src/memory/input.js';
import { validateMemory, type Memory } from '../../src/memory/model.js';
import { parseTimestamp } from '../../src/memory/time.js';

const NOW = parseTimestamp('2024-05-01T10:00:00Z')!;
const NOW_WIRE = '2024-05-01T10:00:00.000000+00:00';
const ctx = (agentId?: string) => ({ agentId, nowMicros: NOW });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function refusal(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError, nothing was thrown');
}

describe('buildNewMemory', () => {
  it('applies the wire contract defaults', () => {
    const m = buildNewMemory({ title: 'T', content: 'C' }, ctx());
    expect(m.id).toMatch(UUID);
    expect(m).toMatchObject({
      tier: 'mid',
      namespace: 'global',
      title: 'T',
      content: 'C',
      tags: [],
      priority: 5,
      confidence: 1,
      source: 'api',
      access_count: 0,
      created_at: NOW_WIRE,
      updated_at: NOW_WIRE,
      expires_at: '2024-05-08T10:00:00.000000+00:00',
      metadata: { agent_id: 'anonymous' },
      version: 1,
    });
    expect('last_accessed_at' in m).toBe(false);
  });

  it('generates a fresh id per call', () => {
    expect(buildNewMemory({ title: 'T', content: 'C' }, ctx()).id).not.toBe(buildNewMemory({ title: 'T', content: 'C' }, ctx()).id);
  });

  it('takes given fields', () => {
    const m = buildNewMemory({ title: ' T ', content: 'C', tier: 'long', namespace: 'a/b', tags: ['x'], priority: 9, confidence: 0.3, source: 'user' }, ctx());
    expect(m).toMatchObject({ title: ' T ', tier: 'long', namespace: 'a/b', tags: ['x'], priority: 9, confidence: 0.3, source: 'user' });
  });

  describe('expires_at', () => {
    it('short tier: 6 hours from now', () => {
      expect(buildNewMemory({ title: 'T', content: 'C', tier: 'short' }, ctx()).expires_at).toBe('2024-05-01T16:00:00.000000+00:00');
    });

    it('long tier: none', () => {
      const m = buildNewMemory({ title: 'T', content: 'C', tier: 'long' }, ctx());
      expect('expires_at' in m).toBe(false);
    });

    it('ttl_secs overrides the tier TTL', () => {
      expect(buildNewMemory({ title: 'T', content: 'C', tier: 'long', ttl_secs: 90 }, ctx()).expires_at).toBe('2024-05-01T10:01:30.000000+00:00');
      expect(buildNewMemory({ title: 'T', content: 'C', ttl_secs: 1 }, ctx()).expires_at).toBe('2024-05-01T10:00:01.000000+00:00');
    });

    it('an explicit expires_at wins over ttl_secs and is normalised', () => {
      const m = buildNewMemory({ title: 'T', content: 'C', ttl_secs: 90, expires_at: '2024-06-01T02:00:00+02:00' }, ctx());
      expect(m.expires_at).toBe('2024-06-01T00:00:00.000000+00:00');
    });

    it('refuses bad ttl_secs and bad expires_at', () => {
      for (const ttl of [0, -5, 1.5, '60', 365 * 86400 + 1]) {
        expect(refusal(() => buildNewMemory({ title: 'T', content: 'C', ttl_secs: ttl }, ctx())).field, String(ttl)).toBe('ttl_secs');
      }
      expect(refusal(() => buildNewMemory({ title: 'T', content: 'C', expires_at: 'tomorrow' }, ctx())).field).toBe('expires_at');
    });
  });

  describe('agent id', () => {
    const meta = { agent_id: 'from-meta' };

    it('prefers the X-Agent-Id header (ctx)', () => {
      const m = buildNewMemory({ title: 'T', content: 'C', agent_id: 'from-body', metadata: meta }, ctx('from-header'));
      expect(m.metadata.agent_id).toBe('from-header');
    });

    it('then body agent_id', () => {
      expect(buildNewMemory({ title: 'T', content: 'C', agent_id: 'from-body', metadata: meta }, ctx()).metadata.agent_id).toBe('from-body');
    });

    it('then metadata.agent_id', () => {
      expect(buildNewMemory({ title: 'T', content: 'C', metadata: meta }, ctx()).metadata.agent_id).toBe('from-meta');
    });

    it('else anonymous', () => {
      expect(buildNewMemory({ title: 'T', content: 'C', metadata: { other: 1 } }, ctx()).metadata).toEqual({ other: 1, agent_id: 'anonymous' });
    });

    it('validates body and metadata agent ids', () => {
      expect(refusal(() => buildNewMemory({ title: 'T', content: 'C', agent_id: 'bad id' }, ctx())).code).toBe('INVALID_AGENT_ID');
      expect(refusal(() => buildNewMemory({ title: 'T', content: 'C', metadata: { agent_id: 'x'.repeat(129) } }, ctx())).field).toBe('metadata.agent_id');
    });

    it('does not mutate the caller metadata object', () => {
      const metadata = { k: 'v' };
      buildNewMemory({ title: 'T', content: 'C', metadata }, ctx('a'));
      expect(metadata).toEqual({ k: 'v' });
    });
  });

  it('refuses server-owned fields with READ_ONLY_FIELD', () => {
    const values: Record<string, unknown> = { created_at: NOW_WIRE, updated_at: NOW_WIRE, version: 3, access_count: 0, last_accessed_at: NOW_WIRE };
    for (const [k, v] of Object.entries(values)) {
      const err = refusal(() => buildNewMemory({ title: 'T', content: 'C', [k]: v }, ctx()));
      expect(err.code, k).toBe('READ_ONLY_FIELD');
      expect(err.field).toBe(k);
    }
  });

  it('preserves unknown keys and drops null ones', () => {
    const m = buildNewMemory({ title: 'T', content: 'C', memory_kind: 'claim', future: { a: [1] }, entity_id: null }, ctx());
    expect(m.memory_kind).toBe('claim');
    expect(m.future).toEqual({ a: [1] });
    expect('entity_id' in m).toBe(false);
  });

  it('does not store create-only keys at top level; scope goes to metadata', () => {
    const m = buildNewMemory({ title: 'T', content: 'C', agent_id: 'ag', ttl_secs: 60, scope: 'team' }, ctx());
    expect('agent_id' in m).toBe(false);
    expect('ttl_secs' in m).toBe(false);
    expect('scope' in m).toBe(false);
    expect(m.metadata).toEqual({ agent_id: 'ag', scope: 'team' });
  });

  it('refuses an invalid scope', () => {
    expect(refusal(() => buildNewMemory({ title: 'T', content: 'C', scope: 's'.repeat(65) }, ctx())).field).toBe('scope');
    expect(refusal(() => buildNewMemory({ title: 'T', content: 'C', scope: 5 }, ctx())).field).toBe('scope');
  });

  it('validates a client-supplied id', () => {
    expect(buildNewMemory({ id: 'client:id-1', title: 'T', content: 'C' }, ctx()).id).toBe('client:id-1');
    for (const id of ['a..b', 'a b', 'x'.repeat(129), '', 5]) {
      expect(refusal(() => buildNewMemory({ id, title: 'T', content: 'C' }, ctx())).field, String(id)).toBe('id');
    }
  });

  it('validates the other fields', () => {
    const cases: Array<[string, unknown]> = [['title', undefined], ['content', undefined], ['tier', 'x'], ['namespace', 'a b'], ['tags', 'x'], ['priority', 11], ['confidence', -1], ['source', 'bot'], ['metadata', 'x']];
    for (const [field, value] of cases) {
      const body: Record<string, unknown> = { title: 'T', content: 'C', [field]: value };
      expect(refusal(() => buildNewMemory(body, ctx())).field, field).toBe(field);
    }
  });

  it('refuses non-object bodies, NUL and forbidden keys', () => {
    for (const v of [null, [], 'x', 1]) expect(refusal(() => buildNewMemory(v, ctx())).code).toBe('INVALID_BODY');
    expect(refusal(() => buildNewMemory(JSON.parse('{"title":"T","content":"C","__proto__":{"x":1}}'), ctx())).code).toBe('FORBIDDEN_KEY');
    expect(refusal(() => buildNewMemory({ title: 'T', content: 'C', note: 'a\u0000' }, ctx())).code).toBe('NUL_CHARACTER');
  });

  it('builds rows the full receive-side validation leaves exactly as they are', () => {
    const bodies: Array<Record<string, unknown>> = [
      { title: 'T', content: 'C' },
      { id: 'given-id', title: ' spaced ', content: 'C', tier: 'long', namespace: 'a/b', tags: ['x', 'y'], priority: 9, confidence: 0.5, source: 'user', metadata: { k: [1, { n: null }] }, zz: { deep: 'kept' } },
      { title: 'T', content: 'C', tier: 'short', ttl_secs: 90, scope: 'team', memory_kind: 'observation', citations: [] },
      { title: 'T', content: 'C', expires_at: '2030-01-01T00:00:00+02:00', agent_id: 'agent-7' },
    ];
    for (const body of bodies) {
      const built = buildNewMemory(body, ctx());
      expect(validateMemory(built), JSON.stringify(body)).toEqual(built);
      expect(Object.keys(validateMemory(built))).toEqual(Object.keys(built));
    }
  });

  it('refuses on create what the full receive-side validation refuses in a row', () => {
    const valid = buildNewMemory({ title: 'T', content: 'C' }, ctx());
    const extras: Array<Record<string, unknown>> = [{ memory_kind: 'episodic' }, { confidence_decayed_at: 'yesterday' }, { citations: 'not a list' }, { citations: [{ bad: 1 }] }, { content: 'x'.repeat(20_000) }];
    const codeOf = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (err) {
        return (err as { code?: string }).code;
      }
      return undefined;
    };
    for (const extra of extras) {
      const what = JSON.stringify(extra).slice(0, 60);
      const inRow = codeOf(() => validateMemory({ ...valid, ...extra }, { maxBytes: 16_384 }));
      expect(inRow, what).toBeDefined();
      expect(codeOf(() => buildNewMemory({ title: 'T', content: 'C', ...extra }, { ...ctx(), maxBytes: 16_384 })), what).toBe(inRow);
    }
  });

  it('emits keys in wire order', () => {
    const keys = Object.keys(buildNewMemory({ zz: 1, content: 'C', title: 'T' }, ctx()));
    expect(keys).toEqual(['id', 'tier', 'namespace', 'title', 'content', 'tags', 'priority', 'confidence', 'source', 'access_count', 'created_at', 'updated_at', 'expires_at', 'metadata', 'version', 'zz']);
  });
});

describe('applyUpdate', () => {
  const LATER = NOW + 5_000_001;
  const LATER_WIRE = '2024-05-01T10:00:05.000001+00:00';
  const existing = (): Memory => buildNewMemory({ id: 'm1', title: 'T', content: 'C', metadata: { k: 1 }, extra: 'keep' }, ctx('alice'));

  it('replaces given fields, bumps version and updated_at, keeps created_at', () => {
    const before = existing();
    const next = applyUpdate(before, { title: ' New ', priority: 8, tags: ['z'] }, { nowMicros: LATER });
    expect(next).toMatchObject({ id: 'm1', title: ' New ', priority: 8, tags: ['z'], content: 'C', version: 2, created_at: NOW_WIRE, updated_at: LATER_WIRE, extra: 'keep' });
    expect(applyUpdate(next, { content: 'again' }, { nowMicros: LATER + 1 }).version).toBe(3);
  });

  it('does not mutate the existing memory', () => {
    const before = existing();
    const copy = structuredClone(before);
    applyUpdate(before, { title: 'New', metadata: { x: 1 }, extra: null }, { nowMicros: LATER });
    expect(before).toEqual(copy);
  });

  it('refuses an empty update', () => {
    expect(refusal(() => applyUpdate(existing(), {}, { nowMicros: LATER })).code).toBe('EMPTY_UPDATE');
    expect(refusal(() => applyUpdate(existing(), { id: 'm1' }, { nowMicros: LATER })).code).toBe('EMPTY_UPDATE');
  });

  it('refuses an id change', () => {
    const err = refusal(() => applyUpdate(existing(), { id: 'm2', title: 'x' }, { nowMicros: LATER }));
    expect(err.code).toBe('READ_ONLY_FIELD');
    expect(err.field).toBe('id');
  });

  it('null clears expires_at and unknown keys', () => {
    const before = existing();
    expect(before.expires_at).toBeDefined();
    const next = applyUpdate(before, { expires_at: null, extra: null }, { nowMicros: LATER });
    expect('expires_at' in next).toBe(false);
    expect('extra' in next).toBe(false);
  });

  it('sets and normalises expires_at, adds unknown keys', () => {
    const next = applyUpdate(existing(), { expires_at: '2025-01-01T01:00:00+01:00', memory_kind: 'reflection' }, { nowMicros: LATER });
    expect(next.expires_at).toBe('2025-01-01T00:00:00.000000+00:00');
    expect(next.memory_kind).toBe('reflection');
  });

  it('keeps the author when metadata is replaced or cleared', () => {
    const replaced = applyUpdate(existing(), { metadata: { x: 1 } }, { nowMicros: LATER });
    expect(replaced.metadata).toEqual({ x: 1, agent_id: 'alice' });
    const spoofed = applyUpdate(existing(), { metadata: { agent_id: 'mallory' } }, { nowMicros: LATER });
    expect(spoofed.metadata.agent_id).toBe('alice');
    const cleared = applyUpdate(existing(), { metadata: null }, { nowMicros: LATER });
    expect(cleared.metadata).toEqual({ agent_id: 'alice' });
  });

  it('refuses agent_id, ttl_secs and scope', () => {
    for (const [k, v] of [['agent_id', 'bob'], ['ttl_secs', 60], ['scope', 'x']] as const) {
      const err = refusal(() => applyUpdate(existing(), { title: 'ok', [k]: v }, { nowMicros: LATER }));
      expect(err.code, k).toBe('READ_ONLY_FIELD');
      expect(err.field).toBe(k);
    }
  });

  it('refuses server-owned fields', () => {
    for (const k of ['created_at', 'updated_at', 'version', 'access_count', 'last_accessed_at']) {
      expect(refusal(() => applyUpdate(existing(), { [k]: k === 'version' || k === 'access_count' ? 9 : NOW_WIRE }, { nowMicros: LATER })).code, k).toBe('READ_ONLY_FIELD');
    }
  });

  it('validates replaced fields', () => {
    const cases: Array<[string, unknown]> = [['tier', 'x'], ['namespace', '../x'], ['title', '  '], ['content', ''], ['tags', [1]], ['priority', 0], ['confidence', 1.5], ['source', 'x'], ['metadata', [1]], ['expires_at', 'soon']];
    for (const [field, value] of cases) {
      expect(() => applyUpdate(existing(), { [field]: value }, { nowMicros: LATER }), field).toThrow(ValidationError);
    }
  });

  it('refuses non-object bodies and forbidden keys', () => {
    expect(refusal(() => applyUpdate(existing(), [], { nowMicros: LATER })).code).toBe('INVALID_BODY');
    expect(refusal(() => applyUpdate(existing(), JSON.parse('{"metadata":{"__proto__":1}}'), { nowMicros: LATER })).code).toBe('FORBIDDEN_KEY');
    expect(applyUpdate(existing(), { metadata: { prototype: 1 } }, { nowMicros: LATER }).metadata.prototype).toBe(1);
  });
});
