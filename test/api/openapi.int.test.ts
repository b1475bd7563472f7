import { Validator } from '@seriousme/openapi-schema-validator';
import { readFileSync } from 'node:fs';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, createOpsApp } from '../../src/api/app.js';
import type { AppDeps } from '../../src/api/deps.js';
import { loadConfig } from '../../src/config.js';
import { KeyRing, ensureOwnKey } from '../../src/federation/keys.js';
import { NonceStore } from '../../src/federation/nonces.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { newKeyDir } from '../helpers/node.js';

/*
 * The contract at /api/v1/openapi.json against the app that serves it: a valid OpenAPI
 * 3.1 document (checked by a validator package, not by us), exactly the routes Hono has
 * registered, and error codes that are the ones the routes really answer.
 */

type Doc = { openapi: string; paths: Record<string, Record<string, Operation>> };
type Operation = { summary?: string; responses: Record<string, { content?: Record<string, { schema?: { properties?: { code?: { enum?: string[] } } } }> }> };

/** "METHOD /path/{param}" for every route handler Hono registered (middleware, `ALL`, is not a route). */
function registeredRoutes(app: Hono): Set<string> {
  return new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`));
}

function documentedOperations(doc: Doc): Set<string> {
  const out = new Set<string>();
  for (const [path, ops] of Object.entries(doc.paths)) for (const method of Object.keys(ops)) out.add(`${method.toUpperCase()} ${path}`);
  return out;
}

/** The codes an operation's document lists for `status`. */
function documentedCodes(doc: Doc, method: string, path: string, status: number): string[] {
  return doc.paths[path]?.[method.toLowerCase()]?.responses[String(status)]?.content?.['application/json']?.schema?.properties?.code?.enum ?? [];
}

describe('OpenAPI document', () => {
  let t: TestDatabase;
  let deps: AppDeps;
  let app: Hono;
  let doc: Doc;

  const build = (env: Record<string, string>) => ({ ...deps, config: loadConfig({ NODE_ID: 'oa-node', DATABASE_URL: t.url, FED_KEY_DIR: deps.config.federation.keyDir, LOG_LEVEL: 'silent', ...env }) });

  beforeAll(async () => {
    t = await createTestDatabase();
    const keyDir = newKeyDir();
    await ensureOwnKey(keyDir, 'oa-node');
    const config = loadConfig({ NODE_ID: 'oa-node', DATABASE_URL: t.url, FED_KEY_DIR: keyDir, ADMIN_TOKEN: 'adm', LOG_LEVEL: 'silent' });
    const claimed = new Set<string>();
    const nonceRedis = {
      set: async (key: string) => (claimed.has(key) ? null : (claimed.add(key), 'OK' as const)),
      eval: async (_script: string, _n: number, key: string | number, nonce: string | number) => (claimed.has(`${key}|${nonce}`) ? 0 : (claimed.add(`${key}|${nonce}`), 1)),
    };
    deps = {
      config,
      database: t.database,
      logger: createLogger('silent'),
      metrics: createMetrics({ nodeId: 'oa-node', role: 'api', defaultMetrics: false }),
      replication: { afterCommit: async () => ({ met: true, acks: 1 }) },
      probes: [],
      federation: { keys: await KeyRing.load(keyDir, 'oa-node'), nonces: new NonceStore(nonceRedis, 'oa', 300_000), onPeerContact: () => {} },
      audit: { record: () => {} },
      policy: null,
      auditKeys: new Map(),
      operations: { requestDlqReplay: async () => {}, requestRepair: async () => {}, queueStatus: async () => [] },
    };
    app = createApp(deps);
    const res = await app.request('/api/v1/openapi.json');
    expect(res.status).toBe(200);
    doc = (await res.json()) as Doc;
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('is a valid OpenAPI 3.1 document by an OpenAPI schema validator', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    expect(doc.openapi).toBe('3.1.0');
  });

  it('documents every route the API app registers, and only those', () => {
    const routes = registeredRoutes(app);
    const documented = documentedOperations(doc);
    expect([...routes].filter((r) => !documented.has(r)), 'registered but not documented').toEqual([]);
    expect([...documented].filter((r) => !routes.has(r)), 'documented but not registered').toEqual([]);
    // Not vacuous: the surface of docs/api.md is there, admin included (ADMIN_TOKEN is set).
    for (const r of ['POST /api/v1/memories', 'PUT /api/v1/memories/{id}', 'POST /api/v1/sync/push', 'GET /api/v1/sync/since', 'POST /api/v1/admin/dlq/purge', 'GET /api/v1/admin/audit/verify', 'GET /metrics', 'GET /api/v1/openapi.json', 'GET /api/v1/docs']) expect(documented, r).toContain(r);
  });

  it('documents every route of the worker role\'s ops app', () => {
    const documented = documentedOperations(doc);
    const ops = registeredRoutes(createOpsApp(deps));
    expect(ops.size).toBeGreaterThan(0);
    expect([...ops].filter((r) => !documented.has(r))).toEqual([]);
  });

  it('describes each operation with a summary, a success answer and its error codes', () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect(op.summary, where).toBeTruthy();
        const statuses = Object.keys(op.responses);
        expect(statuses.some((s) => s.startsWith('2')), where).toBe(true);
        // The one non-envelope 4xx: a broken audit chain's verdict (409) is the answer itself.
        const verdict = where === 'GET /api/v1/admin/audit/verify' ? ['409'] : [];
        for (const s of statuses.filter((s) => Number(s) >= 400 && !verdict.includes(s))) expect(documentedCodes(doc, method, path, Number(s)).length, `${where} ${s}`).toBeGreaterThan(0);
      }
    }
  });

  it('without ADMIN_TOKEN neither mounts nor documents the admin routes', async () => {
    const bare = createApp(build({}));
    const d = (await (await bare.request('/api/v1/openapi.json')).json()) as Doc;
    expect(Object.keys(d.paths).filter((p) => p.startsWith('/api/v1/admin/'))).toEqual([]);
    expect(documentedOperations(d)).toEqual(registeredRoutes(bare));
  });

  it('serves the document and the reference page without the API key, and nothing else', async () => {
    const keyed = createApp(build({ API_KEY: 'k3y' }));
    expect((await keyed.request('/api/v1/openapi.json')).status).toBe(200);
    expect((await keyed.request('/api/v1/docs')).status).toBe(200);
    expect((await keyed.request('/api/v1/docs/assets/init.js')).status).toBe(200);
    const guarded = await keyed.request('/api/v1/memories');
    expect(guarded.status).toBe(401);
    expect(((await guarded.json()) as { code: string }).code).toBe('API_KEY_MISSING');
  });

  it('serves the reference page offline: every script, style and the document come from this node', async () => {
    const page = await app.request('/api/v1/docs');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    // The browser enforces it too: nothing may load from another origin.
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    const html = await page.text();
    expect(html).not.toMatch(/https?:|\/\//);
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThanOrEqual(3);
    for (const ref of refs) {
      const url = new URL(ref, 'http://node.test/api/v1/docs');
      expect(url.host, ref).toBe('node.test');
      const asset = await app.request(url.pathname);
      expect(asset.status, ref).toBe(200);
      expect((await asset.arrayBuffer()).byteLength, ref).toBeGreaterThan(0);
    }
    expect(refs.some((r) => r.endsWith('swagger-ui-bundle.js'))).toBe(true);
    const init = await (await app.request('/api/v1/docs/assets/init.js')).text();
    // The document it loads is the one beside the page; Swagger UI's outside validator is off.
    expect(new URL(/url: '([^']+)'/.exec(init)![1]!, 'http://node.test/api/v1/docs').pathname).toBe('/api/v1/openapi.json');
    expect(init).toContain('validatorUrl: null');
    expect(init).not.toMatch(/https?:/);
    expect((await app.request('/api/v1/docs/assets/package.json')).status).toBe(404);
  });

  it('lists, for each route, the error code the route really answers', async () => {
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) => ({ method: 'POST', path, init: { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } } });
    const send = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => ({ method, path, init: { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }), headers: { 'content-type': 'application/json', ...headers } } });
    const created = await app.request('/api/v1/memories', post('/api/v1/memories', { id: 'oa-1', title: 't', content: 'c' }).init);
    expect(created.status).toBe(201);
    const admin = { authorization: 'Bearer adm' };
    const cases: Array<{ route: string; req: { method: string; path: string; init: RequestInit }; status: number; code: string }> = [
      { route: '/api/v1/memories', req: post('/api/v1/memories', []), status: 400, code: 'INVALID_BODY' },
      { route: '/api/v1/memories', req: post('/api/v1/memories', { title: 't' }), status: 400, code: 'INVALID_CONTENT' },
      { route: '/api/v1/memories', req: post('/api/v1/memories', { title: 't', content: 'c', version: 3 }), status: 400, code: 'READ_ONLY_FIELD' },
      { route: '/api/v1/memories', req: post('/api/v1/memories', '{"title":'), status: 400, code: 'INVALID_JSON' },
      { route: '/api/v1/memories', req: post('/api/v1/memories', { title: 't', content: 'c' }, { 'content-type': 'text/plain' }), status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
      { route: '/api/v1/memories', req: post('/api/v1/memories', { id: 'oa-1', title: 't', content: 'c' }), status: 409, code: 'ID_CONFLICT' },
      { route: '/api/v1/memories', req: post('/api/v1/memories', { title: 't', content: 'c' }, { 'x-agent-id': 'system' }), status: 400, code: 'INVALID_AGENT_ID' },
      { route: '/api/v1/memories', req: send('GET', '/api/v1/memories?limit=ten'), status: 400, code: 'INVALID_QUERY' },
      { route: '/api/v1/memories/bulk', req: post('/api/v1/memories/bulk', { items: [] }), status: 400, code: 'INVALID_BODY' },
      { route: '/api/v1/memories/{id}', req: send('GET', '/api/v1/memories/a..b'), status: 400, code: 'INVALID_ID' },
      { route: '/api/v1/memories/{id}', req: send('GET', '/api/v1/memories/oa-missing'), status: 404, code: 'NOT_FOUND' },
      { route: '/api/v1/memories/{id}', req: send('PUT', '/api/v1/memories/oa-1', { title: 'u' }, { 'if-match': 'v1' }), status: 400, code: 'INVALID_IF_MATCH' },
      { route: '/api/v1/memories/{id}', req: send('PUT', '/api/v1/memories/oa-1', {}), status: 400, code: 'EMPTY_UPDATE' },
      { route: '/api/v1/memories/{id}', req: send('PUT', '/api/v1/memories/oa-1', { title: 'u' }, { 'if-match': '7' }), status: 409, code: 'VERSION_CONFLICT' },
      { route: '/api/v1/memories/{id}', req: send('DELETE', '/api/v1/memories/oa-missing'), status: 404, code: 'NOT_FOUND' },
      { route: '/api/v1/archive', req: post('/api/v1/archive', { ids: Array.from({ length: 1001 }, (_, i) => `a${i}`) }), status: 400, code: 'BULK_TOO_LARGE' },
      { route: '/api/v1/archive/{id}/restore', req: send('POST', '/api/v1/archive/oa-1/restore'), status: 404, code: 'NOT_FOUND' },
      { route: '/api/v1/links', req: post('/api/v1/links', { source_id: 'oa-1', target_id: 'oa-1' }), status: 400, code: 'SELF_LINK' },
      { route: '/api/v1/links', req: send('DELETE', '/api/v1/links', { source_id: 'oa-1', target_id: 'oa-2', colour: 'red' }), status: 400, code: 'UNKNOWN_FIELD' },
      { route: '/api/v1/links/{id}', req: send('GET', '/api/v1/links/oa-missing'), status: 404, code: 'NOT_FOUND' },
      { route: '/api/v1/sync/push', req: post('/api/v1/sync/push', { sender_agent_id: 'x', memories: [] }), status: 403, code: 'PEER_ID_HEADER_MISSING' },
      { route: '/api/v1/sync/push', req: post('/api/v1/sync/push', { sender_agent_id: 'x', memories: [] }, { 'x-peer-id': 'stranger' }), status: 401, code: 'PEER_NOT_ENROLLED' },
      { route: '/api/v1/sync/since', req: send('GET', '/api/v1/sync/since', undefined, { 'x-memory-sig': 'ed25519:AAAA' }), status: 403, code: 'PEER_ID_HEADER_MISSING' },
      { route: '/api/v1/audit/checkpoints', req: send('GET', '/api/v1/audit/checkpoints?after=-1'), status: 400, code: 'INVALID_QUERY' },
      { route: '/api/v1/admin/dlq', req: send('GET', '/api/v1/admin/dlq'), status: 401, code: 'ADMIN_TOKEN_MISSING' },
      { route: '/api/v1/admin/dlq', req: send('GET', '/api/v1/admin/dlq', undefined, { authorization: 'Bearer nope' }), status: 401, code: 'ADMIN_TOKEN_INVALID' },
      { route: '/api/v1/admin/dlq/requeue', req: post('/api/v1/admin/dlq/requeue', {}, admin), status: 400, code: 'INVALID_SELECTOR' },
      { route: '/api/v1/admin/dlq/replay', req: post('/api/v1/admin/dlq/replay', { peer: 'nobody' }, admin), status: 400, code: 'UNKNOWN_PEER' },
      { route: '/api/v1/admin/audit/verify', req: send('GET', '/api/v1/admin/audit/verify?from=0', undefined, admin), status: 400, code: 'INVALID_QUERY' },
      { route: '/api/v1/docs/assets/{name}', req: send('GET', '/api/v1/docs/assets/nope.js'), status: 404, code: 'NOT_FOUND' },
    ];
    for (const { route, req, status, code } of cases) {
      const where = `${req.method} ${req.path}`;
      const res = await app.request(req.path, req.init);
      const body = (await res.json()) as { code: string };
      expect({ status: res.status, code: body.code }, where).toEqual({ status, code });
      expect(documentedCodes(doc, req.method, route, status), where).toContain(code);
    }
  });

  it('refuses an admin body its documented schema refuses, where the old hand checks let it through', async () => {
    // "dry_run": "no" is not the boolean false that confirms a purge: refused, not run as a dry run.
    const purge = await app.request('/api/v1/admin/dlq/purge', { method: 'POST', body: JSON.stringify({ peer: 'p1', dry_run: 'no' }), headers: { 'content-type': 'application/json', authorization: 'Bearer adm' } });
    expect(purge.status).toBe(400);
    expect(await purge.json()).toMatchObject({ code: 'INVALID_BODY', field: 'dry_run' });
    // A peer that is not a string named no peer, and so replayed every peer's DLQ.
    const replay = await app.request('/api/v1/admin/dlq/replay', { method: 'POST', body: JSON.stringify({ peer: 5 }), headers: { 'content-type': 'application/json', authorization: 'Bearer adm' } });
    expect(replay.status).toBe(400);
    expect(await replay.json()).toMatchObject({ code: 'INVALID_BODY', field: 'peer' });
    expect(documentedCodes(doc, 'POST', '/api/v1/admin/dlq/purge', 400)).toContain('INVALID_BODY');
  });

  it('lists only error codes that docs/api.md explains', () => {
    const api = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
    const table = api.slice(api.indexOf('## Error codes'));
    const codes = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(ops)) for (const status of Object.keys(op.responses)) for (const code of documentedCodes(doc, method, path, Number(status))) codes.add(code);
    expect(codes.size).toBeGreaterThan(50);
    expect([...codes].filter((code) => !table.includes(`\`${code}\``))).toEqual([]);
  });

  it('documents the query parameters from the shapes the routes parse with', () => {
    const params = (doc.paths['/api/v1/memories']!.get as unknown as { parameters: Array<{ name: string; in: string; schema: Record<string, unknown> }> }).parameters;
    const limit = params.find((p) => p.name === 'limit' && p.in === 'query');
    expect(limit?.schema).toMatchObject({ type: 'string', pattern: '^\\d{1,10}$' });
    expect(String(limit?.schema.description)).toContain('1..1000, default 20');
    expect(params.map((p) => p.name)).toEqual(expect.arrayContaining(['namespace', 'tier', 'tags', 'since', 'until', 'limit', 'offset']));
  });
});
