import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestNode, type TestNode } from '../helpers/node.js';

const WIRE_TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$/;

let n: TestNode;
beforeAll(async () => {
  n = await startTestNode({ id: 'crud-node' });
});
afterAll(async () => {
  await n?.destroy();
});

const created_id = (r: { json: { ids: string[] } }) => r.json.ids[0]!;

describe('memory routes', () => {
  it('creates with upstream defaults and reads back the wire shape', async () => {
    const r = await api(n.url, 'POST', '/api/v1/memories', { title: '  Hello  ', content: 'world' }, { 'x-agent-id': 'agent-7' });
    expect(r.status).toBe(201);
    expect(r.json).toEqual({ id: expect.any(String), tier: 'mid', namespace: 'global', title: '  Hello  ', agent_id: 'agent-7' });
    const g = await api(n.url, 'GET', `/api/v1/memories/${r.json.id}`);
    expect(g.status).toBe(200);
    expect(g.json.links).toEqual([]);
    const m = g.json.memory;
    expect(Object.keys(m).slice(0, 12)).toEqual(['id', 'tier', 'namespace', 'title', 'content', 'tags', 'priority', 'confidence', 'source', 'access_count', 'created_at', 'updated_at']);
    expect(m).toMatchObject({ priority: 5, confidence: 1, source: 'api', access_count: 0, tags: [], version: 1, metadata: { agent_id: 'agent-7' } });
    expect(m.created_at).toMatch(WIRE_TS);
    expect(m.updated_at).toBe(m.created_at);
    expect(m.expires_at).toMatch(WIRE_TS); // mid tier: created + 7 days
    expect(Date.parse(m.expires_at) - Date.parse(m.created_at)).toBe(7 * 86400e3);
  });

  it('refuses a memory over MEMORY_MAX_BYTES (256 KiB serialized) on create, update and per row in bulk', async () => {
    const blob = 'x'.repeat(256 * 1024);
    const create = await api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c', future_blob: blob });
    expect(create.status).toBe(422);
    expect(create.json).toMatchObject({ code: 'MEMORY_TOO_LARGE', limit: 262144 });
    // just under the cap is fine
    const fits = await api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c', future_blob: 'x'.repeat(250 * 1024) });
    expect(fits.status).toBe(201);
    // PUTs cannot grow a memory past it
    const small = await api(n.url, 'POST', '/api/v1/memories', { title: 'grow', content: 'c' });
    const grow = await api(n.url, 'PUT', `/api/v1/memories/${small.json.id}`, { future_blob: blob });
    expect(grow.status).toBe(422);
    expect(grow.json.code).toBe('MEMORY_TOO_LARGE');
    expect((await api(n.url, 'GET', `/api/v1/memories/${small.json.id}`)).json.memory.version).toBe(1);
    const bulk = await api(n.url, 'POST', '/api/v1/memories/bulk', [{ title: 'ok', content: 'c' }, { title: 'big', content: 'c', future_blob: blob }]);
    expect(bulk.status).toBe(200);
    expect(bulk.json.created).toBe(1);
    expect(bulk.json.errors).toEqual([expect.objectContaining({ index: 1, code: 'MEMORY_TOO_LARGE' })]);
  });

  it('round-trips unknown keys and metadata keys named like Object.prototype members', async () => {
    const inherited = { constructor: 'c', toString: 't', valueOf: 1, hasOwnProperty: [1] };
    const r = await api(n.url, 'POST', '/api/v1/memories', JSON.stringify({ title: 't', content: 'c', ...inherited, metadata: inherited }));
    expect(r.status).toBe(201);
    const g = await api(n.url, 'GET', `/api/v1/memories/${r.json.id}`);
    // read from the raw text: own keys, not the prototype's members
    const m = JSON.parse(g.text).memory;
    for (const [k, v] of Object.entries(inherited)) {
      expect(Object.hasOwn(m, k) && m[k], k).toEqual(v);
      expect(Object.hasOwn(m.metadata, k) && m.metadata[k], `metadata.${k}`).toEqual(v);
    }
    // an update through PUT keeps them and can change one
    const u = await api(n.url, 'PUT', `/api/v1/memories/${r.json.id}`, JSON.stringify({ valueOf: 2 }));
    expect(u.status).toBe(200);
    const after = JSON.parse((await api(n.url, 'GET', `/api/v1/memories/${r.json.id}`)).text).memory;
    expect([after.constructor, after.valueOf, after.toString]).toEqual(['c', 2, 't']);
  });

  it('round-trips unknown fields and normalises input timestamps', async () => {
    const r = await api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c', tier: 'long', future_field: { nested: [1, 2] }, expires_at: '2030-01-02T03:04:05Z' });
    expect(r.status).toBe(201);
    const g = await api(n.url, 'GET', `/api/v1/memories/${r.json.id}`);
    expect(g.json.memory.future_field).toEqual({ nested: [1, 2] });
    expect(g.json.memory.expires_at).toBe('2030-01-02T03:04:05.000000+00:00');
  });

  it('lists with filters and limit/offset', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await api(n.url, 'POST', '/api/v1/memories', { title: `list ${i}`, content: 'x', namespace: 'proj/list', tier: i % 2 ? 'short' : 'long', tags: i < 2 ? ['red', 'blue'] : ['red'] });
      expect(r.status).toBe(201);
    }
    const all = await api(n.url, 'GET', '/api/v1/memories?namespace=proj/list');
    expect(all.json.count).toBe(5);
    expect(all.json.memories).toHaveLength(5);
    // newest change first
    expect(all.json.memories[0].title).toBe('list 4');
    const short = await api(n.url, 'GET', '/api/v1/memories?namespace=proj/list&tier=short');
    expect(short.json.count).toBe(2);
    const tags = await api(n.url, 'GET', '/api/v1/memories?namespace=proj/list&tags=red,blue');
    expect(tags.json.count).toBe(2);
    const page = await api(n.url, 'GET', '/api/v1/memories?namespace=proj/list&limit=2&offset=2');
    expect(page.json.memories.map((m: { title: string }) => m.title)).toEqual(['list 2', 'list 1']);
    const since = all.json.memories[2].updated_at;
    const after = await api(n.url, 'GET', `/api/v1/memories?namespace=proj/list&since=${encodeURIComponent(since)}`);
    expect(after.json.count).toBe(2);
  });

  it('clamps limit to 1000 when more rows match', async () => {
    const seed = await api(n.url, 'POST', '/api/v1/memories', { title: 'clamp seed', content: 'x', namespace: 'proj/clamp' });
    expect(seed.status).toBe(201);
    // 1,100 more rows in one INSERT: copies of the seed under new ids.
    await n.db.database.sql`
      INSERT INTO memories (id, namespace, tier, title, agent_id, tags, created_at, updated_at, expires_at, deleted_at, version, digest, doc)
      SELECT m.id || '-' || g, m.namespace, m.tier, m.title, m.agent_id, m.tags, m.created_at, m.updated_at, m.expires_at, NULL, m.version, m.digest,
             jsonb_set(m.doc, '{id}', to_jsonb(m.id || '-' || g))
      FROM memories m, generate_series(1, 1100) g WHERE m.id = ${seed.json.id}`;
    const clamped = await api(n.url, 'GET', '/api/v1/memories?namespace=proj/clamp&limit=5000');
    expect(clamped.status).toBe(200);
    expect(clamped.json.count).toBe(1000);
    expect(clamped.json.memories).toHaveLength(1000);
    expect(new Set(clamped.json.memories.map((m: { id: string }) => m.id)).size).toBe(1000);
    // the rest is one offset away
    const rest = await api(n.url, 'GET', '/api/v1/memories?namespace=proj/clamp&limit=5000&offset=1000');
    expect(rest.json.memories).toHaveLength(101);
  });

  it('updates with If-Match and refuses a stale version with 409', async () => {
    const c = await api(n.url, 'POST', '/api/v1/memories', { title: 'v1', content: 'a' });
    const id = c.json.id;
    const before = (await api(n.url, 'GET', `/api/v1/memories/${id}`)).json.memory;
    const u = await api(n.url, 'PUT', `/api/v1/memories/${id}`, { title: 'v2', priority: 9 }, { 'if-match': '1' });
    expect(u.status).toBe(200);
    expect(u.json.memory).toMatchObject({ title: 'v2', priority: 9, version: 2, content: 'a' });
    expect(u.json.memory.updated_at > before.updated_at).toBe(true);
    expect(u.json.memory.created_at).toBe(before.created_at);
    const stale = await api(n.url, 'PUT', `/api/v1/memories/${id}`, { title: 'v3' }, { 'if-match': '1' });
    expect(stale.status).toBe(409);
    expect(stale.json).toMatchObject({ code: 'VERSION_CONFLICT', current_version: 2 });
    const weak = await api(n.url, 'PUT', `/api/v1/memories/${id}`, { title: 'v3' }, { 'if-match': 'W/"2"' });
    expect(weak.status).toBe(200);
    expect((await api(n.url, 'GET', `/api/v1/memories/${id}`)).json.memory.title).toBe('v3');
  });

  it('deletes as a tombstone: 404 afterwards, not listed, id not reusable', async () => {
    const c = await api(n.url, 'POST', '/api/v1/memories', { id: 'to-delete-1', title: 'gone', content: 'soon', namespace: 'del' });
    expect(c.status).toBe(201);
    const d = await api(n.url, 'DELETE', '/api/v1/memories/to-delete-1');
    expect(d.status).toBe(200);
    expect(d.json).toEqual({ deleted: true });
    expect((await api(n.url, 'GET', '/api/v1/memories/to-delete-1')).status).toBe(404);
    expect((await api(n.url, 'DELETE', '/api/v1/memories/to-delete-1')).status).toBe(404);
    expect((await api(n.url, 'PUT', '/api/v1/memories/to-delete-1', { title: 'x' })).status).toBe(404);
    expect((await api(n.url, 'GET', '/api/v1/memories?namespace=del')).json.count).toBe(0);
    const again = await api(n.url, 'POST', '/api/v1/memories', { id: 'to-delete-1', title: 'back', content: '?' });
    expect(again.status).toBe(409);
    expect(again.json.code).toBe('ID_CONFLICT');
    const [row] = await n.db.database.sql`SELECT deleted_at FROM memories WHERE id = 'to-delete-1'`;
    expect(row?.deleted_at).not.toBeNull();
  });

  it('bulk creates valid items and reports per-item errors', async () => {
    const items = [
      { title: 'b1', content: 'x', namespace: 'bulk' },
      { title: '', content: 'x' },
      { title: 'b3', content: 'x', namespace: 'bulk', priority: 11 },
      { title: 'b4', content: 'x', namespace: 'bulk' },
    ];
    const r = await api(n.url, 'POST', '/api/v1/memories/bulk', items);
    expect(r.status).toBe(200);
    expect(r.json.created).toBe(2);
    expect(r.json.errors.map((e: { index: number }) => e.index).sort()).toEqual([1, 2]);
    expect(r.json.errors[0]).toMatchObject({ code: 'INVALID_TITLE' });
    expect((await api(n.url, 'GET', '/api/v1/memories?namespace=bulk')).json.count).toBe(2);
    // an id that already exists is reported at its index in the request
    const clash = await api(n.url, 'POST', '/api/v1/memories/bulk', [{ title: 'bad', content: '' }, { title: 'new', content: 'x', namespace: 'bulk' }, { id: created_id(r), title: 'dup', content: 'x' }]);
    expect(clash.json.errors.map((e: { index: number; code: string }) => [e.index, e.code])).toEqual([[0, 'INVALID_CONTENT'], [2, 'ID_CONFLICT']]);
    const tooMany = await api(n.url, 'POST', '/api/v1/memories/bulk', Array.from({ length: 1001 }, () => ({ title: 't', content: 'c' })));
    expect(tooMany.status).toBe(400);
    expect(tooMany.json.code).toBe('BULK_TOO_LARGE');
  });

  it('every write appends to the change feed in the same transaction', async () => {
    const before = await n.db.database.sql`SELECT count(*)::int AS n FROM change_feed`;
    const c = await api(n.url, 'POST', '/api/v1/memories', { title: 'feed', content: 'x' });
    await api(n.url, 'PUT', `/api/v1/memories/${c.json.id}`, { content: 'y' });
    await api(n.url, 'DELETE', `/api/v1/memories/${c.json.id}`);
    const rows = await n.db.database.sql`SELECT op FROM change_feed WHERE memory_id = ${c.json.id} ORDER BY txid, seq`;
    expect(rows.map((r) => r.op)).toEqual(['upsert', 'upsert', 'delete']);
    const after = await n.db.database.sql`SELECT count(*)::int AS n FROM change_feed`;
    expect(after[0]!.n - before[0]!.n).toBe(3);
  });

  it('serves health without the API key, readiness and metrics', async () => {
    // A write of its own, for the write counter to show.
    expect((await api(n.url, 'POST', '/api/v1/memories', { title: 'counted', content: 'x' })).status).toBe(201);
    const h = await api(n.url, 'GET', '/api/v1/health');
    expect(h.json).toMatchObject({ status: 'ok', service: 'memfed', federation_enabled: false });
    const r = await api(n.url, 'GET', '/api/v1/ready');
    expect(r.status).toBe(200);
    expect(r.json.checks).toEqual({ postgres: 'ok', redis: 'ok' });
    const m = await api(n.url, 'GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.text).toContain('memfed_http_request_duration_seconds_bucket');
    expect(m.text).toMatch(/memfed_memory_writes_total\{op="create",node="crud-node",role="all",process="[^"]+"\} [1-9]\d*/);
  });
});

describe('API_KEY', () => {
  let k: TestNode;
  beforeAll(async () => {
    k = await startTestNode({ id: 'keyed', env: { API_KEY: 's3cret-key' } });
  });
  afterAll(async () => {
    await k?.destroy();
  });

  it('guards every route but health and readiness', async () => {
    expect((await api(k.url, 'GET', '/api/v1/health')).status).toBe(200);
    expect((await api(k.url, 'GET', '/api/v1/ready')).status).toBe(200);
    const none = await api(k.url, 'GET', '/api/v1/memories');
    expect(none.status).toBe(401);
    expect(none.json.code).toBe('API_KEY_MISSING');
    const wrong = await api(k.url, 'POST', '/api/v1/memories', { title: 't', content: 'c' }, { 'x-api-key': 's3cret-kez' });
    expect(wrong.status).toBe(401);
    expect(wrong.json.code).toBe('API_KEY_INVALID');
    expect((await api(k.url, 'GET', '/metrics')).status).toBe(401);
    expect((await api(k.url, 'GET', '/api/v1/memories', undefined, { 'x-api-key': 's3cret-key' })).status).toBe(200);
    expect((await api(k.url, 'GET', '/api/v1/memories', undefined, { authorization: 'Bearer s3cret-key' })).status).toBe(200);
    const [{ n: count }] = (await k.db.database.sql`SELECT count(*)::int AS n FROM memories`) as unknown as [{ n: number }];
    expect(count).toBe(0);
  });
});
