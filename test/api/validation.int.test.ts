import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newNonce } from '../../src/federation/signing.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';

/*
 * The upstream validation rules (src/memory/rules.ts, ported from upstream ai-memory 0.7.0
 * src/validate.rs and src/models/memory.rs) through the real API: a client write that an
 * upstream peer would refuse is a 400 with a stable code and commits nothing; a pushed row
 * that upstream would refuse is reported skipped with a reason and not applied; what
 * upstream accepts (and memfed used to refuse) is stored and served exactly as sent.
 */

let n: TestNode;
let peer: FakePeer;

beforeAll(async () => {
  const keyDir = newKeyDir();
  peer = await new FakePeer('peer-v').init();
  peer.enrolIn(keyDir);
  n = await startTestNode({ id: 'validating-node', keyDir });
});
afterAll(async () => {
  await n?.destroy();
});

/** Rows and feed entries: a refused write must change neither. */
const state = async (): Promise<{ memories: number; feed: number }> => {
  const [r] = await n.db.database.sql`SELECT (SELECT count(*) FROM memories)::int AS memories, (SELECT count(*) FROM change_feed)::int AS feed`;
  return { memories: r!.memories as number, feed: r!.feed as number };
};

// Each row: a body upstream refuses, and the code memfed answers with (one per field family).
const refusedBodies: Array<[rule: string, body: Record<string, unknown>, code: string, field: string]> = [
  ['is_clean_string: \\r in content', { content: 'line one\r\nline two' }, 'INVALID_CONTENT', 'content'],
  ['is_clean_string: C1 control in content', { content: 'a\u009bb' }, 'INVALID_CONTENT', 'content'],
  ['validate_content: whitespace-only content', { content: ' \n\t ' }, 'INVALID_CONTENT', 'content'],
  ['is_clean_string: U+0085 inside a title', { title: 'a\u0085b' }, 'INVALID_TITLE', 'title'],
  ['validate_namespace: a space in a namespace', { namespace: 'team one' }, 'INVALID_NAMESPACE', 'namespace'],
  ['validate_tags: a control character in a tag', { tags: ['ok', 'a\u0007'] }, 'INVALID_TAGS', 'tags[1]'],
  ['MemoryKind serde: unknown memory_kind', { memory_kind: 'fact' }, 'INVALID_MEMORY_KIND', 'memory_kind'],
  ['ConfidenceSource serde: unknown confidence_source', { confidence_source: 'gut' }, 'INVALID_CONFIDENCE_SOURCE', 'confidence_source'],
  ['Citation serde: mistyped citations', { citations: [{ url: 'x' }] }, 'INVALID_CITATIONS', 'citations[0].uri'],
  ['SourceSpan serde: mistyped source_span', { source_span: { start: '0', end: 4 } }, 'INVALID_SOURCE_SPAN', 'source_span.start'],
  ['Memory serde: mistyped persona_version', { persona_version: 'v2' }, 'INVALID_PERSONA_VERSION', 'persona_version'],
  ['Memory serde: mistyped reflection_depth', { reflection_depth: 0.5 }, 'INVALID_REFLECTION_DEPTH', 'reflection_depth'],
  ['ConfidenceSignals serde: mistyped confidence_signals', { confidence_signals: { source_age_days: 1 } }, 'INVALID_CONFIDENCE_SIGNALS', 'confidence_signals.freshness_factor'],
];

describe('client writes upstream would refuse: 400 with a stable code, nothing committed', () => {
  it.each(refusedBodies)('create: %s', async (_rule, over, code, field) => {
    const before = await state();
    const r = await api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c', ...over });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ code, field });
    expect(await state()).toEqual(before);
  });

  it.each(refusedBodies)('update (PUT): %s', async (_rule, over, code, field) => {
    const made = await api(n.url, 'POST', '/api/v1/memories', { title: 'to update', content: 'c' });
    expect(made.status).toBe(201);
    const before = await state();
    const r = await api(n.url, 'PUT', `/api/v1/memories/${made.json.id}`, over);
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ code, field });
    expect(await state()).toEqual(before);
    const stored = await api(n.url, 'GET', `/api/v1/memories/${made.json.id}`);
    expect(stored.json.memory.version).toBe(1);
  });

  it('bulk: each refused item is reported with its code; only the valid items are committed', async () => {
    const before = await state();
    const items = [{ title: 'bulk ok', content: 'c' }, ...refusedBodies.map(([, over]) => ({ title: 't', content: 'c', ...over }))];
    const r = await api(n.url, 'POST', '/api/v1/memories/bulk', items);
    expect(r.status).toBe(200);
    expect(r.json.created).toBe(1);
    expect(r.json.errors.map((e: { index: number; code: string }) => [e.index, e.code])).toEqual(refusedBodies.map(([, , code], i) => [i + 1, code]));
    const after = await state();
    expect(after).toEqual({ memories: before.memories + 1, feed: before.feed + 1 });
  });

  it('create-only rules: a past expires_at, a ttl over a year, an unknown scope, a reserved agent id', async () => {
    const before = await state();
    const cases: Array<[Record<string, unknown>, Record<string, string>, string]> = [
      [{ expires_at: '2020-01-01T00:00:00Z' }, {}, 'INVALID_EXPIRES_AT'],
      [{ ttl_secs: 366 * 86400 }, {}, 'INVALID_TTL_SECS'],
      [{ scope: 'everyone' }, {}, 'INVALID_SCOPE'],
      [{}, { 'x-agent-id': 'daemon' }, 'INVALID_AGENT_ID'],
    ];
    for (const [over, headers, code] of cases) {
      const r = await api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c', ...over }, headers);
      expect(r.status, code).toBe(400);
      expect(r.json.code).toBe(code);
    }
    expect(await state()).toEqual(before);
  });
});

describe('what upstream accepts is stored and served as sent (point 5: validate trimmed, store untrimmed)', () => {
  it('a padded title, a tab in a namespace, padded tags and typed optional fields round-trip unchanged', async () => {
    const body = {
      title: '  Padded title\u0085',
      content: 'c',
      namespace: 'team\tone/notes',
      tags: [' spaced '],
      memory_kind: 'claim',
      confidence_source: 'auto_derived',
      citations: [{ uri: 'doc:paper', accessed_at: '2026-01-01T00:00:00Z', span: { start: 0, end: 3 } }],
      source_span: { start: 1, end: 2 },
      reflection_depth: 1,
      confidence_signals: { source_age_days: 2, atom_derivation: true, prior_corroboration_count: 0, freshness_factor: 1, baseline_per_source: 0.5 },
    };
    const r = await api(n.url, 'POST', '/api/v1/memories', body);
    expect(r.status).toBe(201);
    expect(r.json.title).toBe('  Padded title\u0085');
    const got = (await api(n.url, 'GET', `/api/v1/memories/${r.json.id}`)).json.memory;
    expect(got).toMatchObject(body);
    const listed = await api(n.url, 'GET', `/api/v1/memories?namespace=${encodeURIComponent('team\tone/notes')}`);
    expect(listed.json.memories.map((m: { id: string }) => m.id)).toEqual([r.json.id]);
    const query = 'since=2000-01-01T00:00:00Z&limit=10000';
    const nonce = newNonce();
    const pulled = await fetch(`${n.url}/api/v1/sync/since?${query}`, { headers: { 'x-peer-id': 'peer-v', 'x-memory-nonce': nonce, 'x-memory-sig': peer.signGet('/api/v1/sync/since', query, nonce) } });
    const since = { json: (await pulled.json()) as { memories: Array<{ id: string }> } };
    expect(since.json.memories.find((m: { id: string }) => m.id === r.json.id)).toMatchObject({ title: body.title, namespace: body.namespace, tags: body.tags });
  });
});

describe('memfed keys memories on id, not on (title, namespace)', () => {
  it('two creates with the same title and namespace are two memories (upstream: 409 CONFLICT or an upsert)', async () => {
    const one = await api(n.url, 'POST', '/api/v1/memories', { title: 'same title', namespace: 'dup', content: 'first' });
    const two = await api(n.url, 'POST', '/api/v1/memories', { title: 'same title', namespace: 'dup', content: 'second' });
    expect([one.status, two.status]).toEqual([201, 201]);
    expect(one.json.id).not.toBe(two.json.id);
    expect((await api(n.url, 'GET', '/api/v1/memories?namespace=dup')).json.count).toBe(2);
  });
});

describe('receive side: pushed rows upstream would refuse are skipped with a reason, not applied', () => {
  it('reports each refused row skipped with its reason and applies the rest', async () => {
    const good = wireMemory({ title: '  kept as sent  ', namespace: 'fed\ttab' });
    const bad = refusedBodies.map(([, over]) => wireMemory(over));
    const before = await state();
    const r = await send(n.url, peer.push({ sender_agent_id: 'peer-v', memories: [good, ...bad] }));
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ applied: 1, skipped: bad.length });
    const reasons = new Map(r.json.results.filter((x: { status: string }) => x.status === 'skipped').map((x: { id: string; reason: string }) => [x.id, x.reason]));
    refusedBodies.forEach(([rule, , , field], i) => {
      expect(reasons.get(bad[i]!.id), rule).toMatch(new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}: `));
    });
    expect(await state()).toEqual({ memories: before.memories + 1, feed: before.feed + 1 });
    const stored = (await api(n.url, 'GET', `/api/v1/memories/${good.id}`)).json.memory;
    expect(stored).toMatchObject({ title: '  kept as sent  ', namespace: 'fed\ttab' });
    for (const b of bad) expect((await api(n.url, 'GET', `/api/v1/memories/${b.id}`)).status).toBe(404);
  });
});
