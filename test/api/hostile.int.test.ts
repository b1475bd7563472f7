import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestNode, type TestNode } from '../helpers/node.js';

let n: TestNode;
beforeAll(async () => {
  n = await startTestNode({ id: 'hostile', env: { MAX_BODY_BYTES: String(128 * 1024), MAX_BATCH_BODY_BYTES: String(256 * 1024) } });
  expect((await api(n.url, 'POST', '/api/v1/memories', { id: 'abc', title: 'target', content: 'c' })).status).toBe(201);
});
afterAll(async () => {
  await n?.destroy();
});

async function rowCount(): Promise<number> {
  const [r] = await n.db.database.sql`SELECT (SELECT count(*) FROM memories) + (SELECT count(*) FROM change_feed) AS n`;
  return Number(r!.n);
}

/** Raw HTTP so we control framing (chunked, bad bytes, lying Content-Length). */
function raw(method: string, path: string, body: Buffer | null, headers: Record<string, string | number> = {}): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: n.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

describe('hostile input never yields a 500 and changes nothing', () => {
  const cases: Array<[string, () => Promise<{ status: number; json: any }>, number, string]> = [
    ['malformed JSON', () => api(n.url, 'POST', '/api/v1/memories', '{"title": "x",'), 400, 'INVALID_JSON'],
    ['empty body', () => api(n.url, 'POST', '/api/v1/memories', ''), 400, 'EMPTY_BODY'],
    ['JSON array instead of object', () => api(n.url, 'POST', '/api/v1/memories', '[1,2]'), 400, 'INVALID_BODY'],
    ['bad UTF-8', () => raw('POST', '/api/v1/memories', Buffer.from([0x7b, 0x22, 0x74, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]), { 'content-type': 'application/json' }), 400, 'INVALID_UTF8'],
    ['deep nesting', () => api(n.url, 'POST', '/api/v1/memories', `{"title":"t","content":"c","metadata":${'['.repeat(5000)}${']'.repeat(5000)}}`), 400, 'NESTING_TOO_DEEP'],
    ['metadata nested 33 levels', () => api(n.url, 'POST', '/api/v1/memories', `{"title":"t","content":"c","metadata":${'{"a":'.repeat(33)}1${'}'.repeat(33)}}`), 400, 'INVALID_METADATA'],
    ['NUL in content', () => api(n.url, 'POST', '/api/v1/memories', '{"title":"t","content":"a\\u0000b"}'), 400, 'NUL_CHARACTER'],
    ['NUL in a metadata key', () => api(n.url, 'POST', '/api/v1/memories', '{"title":"t","content":"c","metadata":{"a\\u0000":1}}'), 400, 'NUL_CHARACTER'],
    ['__proto__ key', () => api(n.url, 'POST', '/api/v1/memories', '{"title":"t","content":"c","__proto__":{"admin":true}}'), 400, 'FORBIDDEN_KEY'],
    ['nested __proto__ key', () => api(n.url, 'POST', '/api/v1/memories', '{"title":"t","content":"c","metadata":{"x":{"__proto__":{}}}}'), 400, 'FORBIDDEN_KEY'],
    ['lone surrogate in a title', () => api(n.url, 'POST', '/api/v1/memories', '{"title":"a\\ud800","content":"c"}'), 400, 'INVALID_UNICODE'],
    ['lone surrogate in a bulk item', () => api(n.url, 'POST', '/api/v1/memories/bulk', '[{"title":"ok","content":"c"},{"title":"t","content":"\\udc00"}]'), 400, 'INVALID_UNICODE'],
    ['non-finite number', () => api(n.url, 'POST', '/api/v1/memories', '{"title":"t","content":"c","metadata":{"n":1e400}}'), 400, 'INVALID_NUMBER'],
    ['NUL in a tags filter', () => api(n.url, 'GET', '/api/v1/memories?tags=%00'), 400, 'INVALID_QUERY'],
    ['oversize body with Content-Length', () => api(n.url, 'POST', '/api/v1/memories', JSON.stringify({ title: 't', content: 'x'.repeat(140 * 1024) })), 413, 'PAYLOAD_TOO_LARGE'],
    ['oversize chunked body', () => raw('POST', '/api/v1/memories', Buffer.from(JSON.stringify({ title: 't', content: 'x'.repeat(140 * 1024) })), { 'transfer-encoding': 'chunked', 'content-type': 'application/json' }), 413, 'PAYLOAD_TOO_LARGE'],
    ['content over 65,536 bytes', () => api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'é'.repeat(32769) }), 400, 'INVALID_CONTENT'],
    ['bad tier', () => api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c', tier: 'forever' }), 400, 'INVALID_TIER'],
    ['wrong types', () => api(n.url, 'POST', '/api/v1/memories', { title: 5, content: ['c'] }), 400, 'INVALID_TITLE'],
    ['namespace traversal', () => api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c', namespace: 'a/../b' }), 400, 'INVALID_NAMESPACE'],
    ['server-owned field', () => api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c', version: 99 }), 400, 'READ_ONLY_FIELD'],
    ['hostile id in body', () => api(n.url, 'POST', '/api/v1/memories', { id: '../../etc/passwd', title: 't', content: 'c' }), 400, 'INVALID_ID'],
    ['hostile X-Agent-Id', () => api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c' }, { 'x-agent-id': 'a b<script>' }), 400, 'INVALID_AGENT_ID'],
    ['hostile path id', () => api(n.url, 'GET', '/api/v1/memories/%2e%2e%2f%2e%2e'), 400, 'INVALID_ID'],
    ['overlong path id', () => api(n.url, 'GET', `/api/v1/memories/${'a'.repeat(129)}`), 400, 'INVALID_ID'],
    ['bad percent-encoding in id', () => api(n.url, 'DELETE', '/api/v1/memories/%E0%A4%A'), 400, 'INVALID_ID'],
    ['negative limit', () => api(n.url, 'GET', '/api/v1/memories?limit=-1'), 400, 'INVALID_QUERY'],
    ['non-numeric offset', () => api(n.url, 'GET', '/api/v1/memories?offset=1e9'), 400, 'INVALID_QUERY'],
    ['bad since', () => api(n.url, 'GET', '/api/v1/memories?since=yesterday'), 400, 'INVALID_QUERY'],
    ['bad namespace filter', () => api(n.url, 'GET', '/api/v1/memories?namespace=a%00b'), 400, 'INVALID_QUERY'],
    ['bad If-Match', () => api(n.url, 'PUT', '/api/v1/memories/abc', { title: 't' }, { 'if-match': 'banana' }), 400, 'INVALID_IF_MATCH'],
    ['empty update', () => api(n.url, 'PUT', '/api/v1/memories/abc', {}), 400, 'EMPTY_UPDATE'],
    ['bulk not an array', () => api(n.url, 'POST', '/api/v1/memories/bulk', { nope: 1 }), 400, 'INVALID_BODY'],
    ['lying Content-Length', () => raw('POST', '/api/v1/memories', null, { 'content-length': '99999999999', 'content-type': 'application/json' }), 413, 'PAYLOAD_TOO_LARGE'],
    ['unknown route', () => api(n.url, 'GET', '/api/v1/nope'), 404, 'ROUTE_NOT_FOUND'],
    // A page on any origin can send these without a CORS preflight: never a write.
    ['JSON sent as text/plain', () => api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c' }, { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['JSON sent as a form', () => api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c' }, { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['JSON sent as multipart', () => api(n.url, 'POST', '/api/v1/memories/bulk', [{ title: 't', content: 'c' }], { 'content-type': 'multipart/form-data; boundary=x' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    // fetch sends a byte body with no Content-Type at all.
    ['body without a Content-Type', () => fetch(`${n.url}/api/v1/memories`, { method: 'POST', body: new TextEncoder().encode('{"title":"t","content":"c"}') }).then(async (r) => ({ status: r.status, json: await r.json() })), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['update sent as text/plain', () => api(n.url, 'PUT', '/api/v1/memories/abc', { title: 'changed' }, { 'content-type': 'text/plain;charset=UTF-8' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['link sent as text/plain', () => api(n.url, 'POST', '/api/v1/links', { source_id: 'abc', target_id: 'abc', relation: 'related_to' }, { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['link removal sent as text/plain', () => api(n.url, 'DELETE', '/api/v1/links', { source_id: 'abc', target_id: 'abc', relation: 'related_to' }, { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['archive sent as text/plain', () => api(n.url, 'POST', '/api/v1/archive', { ids: ['abc'] }, { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['a +json suffix type', () => api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c' }, { 'content-type': 'application/merge-patch+json' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['a type that only starts like JSON', () => api(n.url, 'POST', '/api/v1/memories', { title: 't', content: 'c' }, { 'content-type': 'application/jsonx' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['sync push without peer id', () => api(n.url, 'POST', '/api/v1/sync/push', { sender_agent_id: 'x', memories: [] }), 403, 'PEER_ID_HEADER_MISSING'],
  ];

  for (const [name, send, status, code] of cases) {
    it(`${name} -> ${status} ${code}`, async () => {
      const before = await rowCount();
      const r = await send();
      expect(r.status).toBe(status);
      expect(r.json?.code).toBe(code);
      expect(typeof r.json?.error).toBe('string');
      expect(await rowCount()).toBe(before);
    });
  }

  it('a slow client that never finishes its body does not block other requests', async () => {
    const sock = connect(n.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write('POST /api/v1/memories HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"title":');
    const ok = await api(n.url, 'GET', '/api/v1/health');
    expect(ok.status).toBe(200);
    sock.destroy();
  });

  it('accepts application/json in any case, with parameters', async () => {
    for (const type of ['application/json', 'Application/JSON; Charset=UTF-8', 'application/json;charset=utf-8', ' application/json ; foo=bar']) {
      const r = await api(n.url, 'POST', '/api/v1/memories', { title: type, content: 'c' }, { 'content-type': type });
      expect(r.status, type).toBe(201);
    }
  });

  it('the node still serves after all of that', async () => {
    const r = await api(n.url, 'POST', '/api/v1/memories', { title: 'still alive', content: 'yes' });
    expect(r.status).toBe(201);
  });
});
