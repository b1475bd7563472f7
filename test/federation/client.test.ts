import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as ed from '@noble/ed25519';
import { afterAll, beforeAll, describe, it, expect } from 'vitest';
import { PeerClient, PeerRequestError, classifyStatus, parseRetryAfter, type PeerClientOptions } from '../../src/federation/client.js';
import { classifyNonce, getSigningBytes, postSigningBytes, privateKeyObject } from '../../src/federation/signing.js';

describe('classifyStatus', () => {
  it.each([
    [429, 'throttle'],
    [401, 'unenrolled'], [403, 'unenrolled'],
    [400, 'permanent'], [413, 'permanent'], [422, 'permanent'],
    [500, 'transient'], [502, 'transient'], [503, 'transient'], [504, 'transient'], [408, 'transient'], [404, 'transient'],
  ])('%i -> %s', (status, cls) => {
    expect(classifyStatus(status)).toBe(cls);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2024-05-01T10:00:00Z');

  it('reads delta seconds', () => {
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter(' 2 ', now)).toBe(2000);
    expect(parseRetryAfter('120', now)).toBe(120_000);
  });

  it('reads an HTTP date relative to now', () => {
    expect(parseRetryAfter('Wed, 01 May 2024 10:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 01 May 2024 09:00:00 GMT', now)).toBe(0); // in the past
  });

  it('caps at 10 minutes', () => {
    expect(parseRetryAfter('600', now)).toBe(600_000);
    expect(parseRetryAfter('601', now)).toBe(600_000);
    expect(parseRetryAfter('999999999', now)).toBe(600_000);
    expect(parseRetryAfter('Thu, 02 May 2024 10:00:00 GMT', now)).toBe(600_000);
  });

  it('returns undefined for absent or garbage values', () => {
    for (const v of [null, '', 'soon', 'abc', '1e3', '5s']) expect(parseRetryAfter(v, now), String(v)).toBeUndefined();
  });
});

describe('PeerRequestError', () => {
  it('leads the message with the class and keeps status and retry hint', () => {
    const e = new PeerRequestError('throttle', 'POST /x to p: HTTP 429', 429, 1000);
    expect(e.message).toBe('[throttle] POST /x to p: HTTP 429');
    expect(e.message.startsWith('[throttle]')).toBe(true);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('PeerRequestError');
    expect(e.failureClass).toBe('throttle');
    expect(e.status).toBe(429);
    expect(e.retryAfterMs).toBe(1000);
  });
});

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

describe('PeerClient against a local server', () => {
  let server: Server;
  let base: string;
  const received: Received[] = [];
  const priv = new Uint8Array(randomBytes(32));
  let pub: Uint8Array;

  beforeAll(async () => {
    pub = await ed.getPublicKeyAsync(priv);
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
        const mode = (req.url ?? '').split('/')[1];
        const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(JSON.stringify(body));
        };
        switch (mode) {
          case 'ok': return json(200, { applied: 1, deleted: 0, noop: 0, skipped: 0, receiver_agent_id: 'peer-x' });
          case 'busy': return json(503, { error: 'busy' }, { 'retry-after': '3' });
          case 'throttle': return json(429, { error: 'slow down' }, { 'retry-after': '1' });
          case 'reject': return json(400, { error: 'bad' });
          case 'large': return json(413, { error: 'too large' });
          case 'unenrolled': return json(401, { error: 'x_memory_sig_no_enrolled_key' });
          case 'gone': return json(404, { error: 'not found' });
          case 'notjson': res.writeHead(200); return res.end('hello');
          case 'hang': return; // never answer
          default: return json(500, { error: 'unexpected' });
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const client = (over: Partial<PeerClientOptions> = {}) =>
    new PeerClient({ selfId: 'node-a', signingKey: privateKeyObject(priv), apiKey: '', timeoutMs: 2000, ...over });
  const peer = (mode: string) => ({ id: `peer-${mode}`, url: `${base}/${mode}` });
  const last = () => received[received.length - 1]!;

  async function failure(p: Promise<unknown>): Promise<PeerRequestError> {
    try {
      await p;
    } catch (err) {
      expect(err).toBeInstanceOf(PeerRequestError);
      return err as PeerRequestError;
    }
    throw new Error('expected a PeerRequestError');
  }

  it('push sends a signed POST that verifies over the exact received bytes', async () => {
    const body = { sender_agent_id: 'node-a', recipient: 'peer-ok', memories: [{ id: 'm1', title: 'héllo 😀' }] };
    const res = await client().push(peer('ok'), body);
    expect(res).toEqual({ applied: 1, deleted: 0, noop: 0, skipped: 0, receiver_agent_id: 'peer-x' });

    const r = last();
    expect(r.method).toBe('POST');
    expect(r.url).toBe('/ok/api/v1/sync/push');
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['x-peer-id']).toBe('node-a');
    expect(r.headers['x-api-key']).toBeUndefined();
    expect(JSON.parse(r.body.toString('utf8'))).toEqual(body);

    const nonce = r.headers['x-memory-nonce'] as string;
    expect(classifyNonce(nonce).kind).toBe('memfed');
    const sigHeader = r.headers['x-memory-sig'] as string;
    expect(sigHeader).toMatch(/^ed25519=[A-Za-z0-9+/]{86}==$/);
    const sig = new Uint8Array(Buffer.from(sigHeader.slice('ed25519='.length), 'base64'));
    const signedBytes = new Uint8Array(Buffer.concat([r.body, Buffer.from([0]), Buffer.from(nonce, 'utf8')]));
    expect(await ed.verifyAsync(sig, signedBytes, pub)).toBe(true);
    expect(await ed.verifyAsync(sig, new Uint8Array(postSigningBytes(r.body, undefined)), pub)).toBe(false);
  });

  it('uses a fresh nonce per request', async () => {
    await client().push(peer('ok'), { sender_agent_id: 'node-a', memories: [] });
    const n1 = last().headers['x-memory-nonce'];
    await client().push(peer('ok'), { sender_agent_id: 'node-a', memories: [] });
    expect(last().headers['x-memory-nonce']).not.toBe(n1);
  });

  it('forwards x-api-key when configured and omits the signature without a key', async () => {
    await client({ apiKey: 'secret-key', signingKey: null }).push(peer('ok'), { sender_agent_id: 'node-a', memories: [] });
    expect(last().headers['x-api-key']).toBe('secret-key');
    expect(last().headers['x-memory-sig']).toBeUndefined();
    expect(last().headers['x-peer-id']).toBe('node-a');
  });

  it('since sends a signed GET over "GET\\n<path>\\n<raw query>" + 0x00 + nonce', async () => {
    await client().since(peer('ok'), { since: '2024-01-01T00:00:00.000000+00:00', limit: '500' });
    const r = last();
    expect(r.method).toBe('GET');
    const [pathname, rawQuery] = r.url.split('?') as [string, string];
    expect(pathname).toBe('/ok/api/v1/sync/since');
    const params = new URLSearchParams(rawQuery);
    expect(params.get('since')).toBe('2024-01-01T00:00:00.000000+00:00');
    expect(params.get('peer')).toBe('node-a');
    expect(rawQuery).toContain('%3A'); // still percent-encoded
    const nonce = r.headers['x-memory-nonce'] as string;
    const sig = new Uint8Array(Buffer.from((r.headers['x-memory-sig'] as string).slice('ed25519='.length), 'base64'));
    expect(await ed.verifyAsync(sig, new Uint8Array(getSigningBytes('/api/v1/sync/since', rawQuery, nonce)), pub)).toBe(true);
  });

  it('503 with Retry-After: 3 -> transient, retryAfterMs 3000', async () => {
    const e = await failure(client().push(peer('busy'), { sender_agent_id: 'node-a', memories: [] }));
    expect(e.failureClass).toBe('transient');
    expect(e.status).toBe(503);
    expect(e.retryAfterMs).toBe(3000);
    expect(e.message.startsWith('[transient]')).toBe(true);
    expect(e.message).toContain('HTTP 503');
  });

  it('429 -> throttle', async () => {
    const e = await failure(client().push(peer('throttle'), { sender_agent_id: 'node-a', memories: [] }));
    expect(e.failureClass).toBe('throttle');
    expect(e.status).toBe(429);
    expect(e.retryAfterMs).toBe(1000);
    expect(e.message.startsWith('[throttle]')).toBe(true);
  });

  it('400 / 413 -> permanent, 401 -> unenrolled, 404 -> transient', async () => {
    expect((await failure(client().push(peer('reject'), {}))).failureClass).toBe('permanent');
    expect((await failure(client().push(peer('large'), {}))).failureClass).toBe('permanent');
    const un = await failure(client().push(peer('unenrolled'), {}));
    expect(un.failureClass).toBe('unenrolled');
    expect(un.retryAfterMs).toBeUndefined();
    expect((await failure(client().since(peer('gone'), {}))).failureClass).toBe('transient');
  });

  it('a non-JSON success body -> transient', async () => {
    const e = await failure(client().push(peer('notjson'), {}));
    expect(e.failureClass).toBe('transient');
    expect(e.message).toContain('not JSON');
  });

  // Its timing (how close to timeoutMs it gives up) is the bench's business, not a test's.
  it('a server that never answers -> transient timeout, from the client\'s timeoutMs', async () => {
    const e = await failure(client({ timeoutMs: 200 }).push(peer('hang'), { sender_agent_id: 'node-a', memories: [] }));
    expect(e.failureClass).toBe('transient');
    expect(e.message).toMatch(/^\[transient\] POST \/api\/v1\/sync\/push to peer-hang: timeout after 200 ms/);
    expect(e.status).toBeUndefined();
  });

  it('a refused connection -> transient', async () => {
    const tmp = createServer();
    await new Promise<void>((resolve) => tmp.listen(0, '127.0.0.1', resolve));
    const port = (tmp.address() as AddressInfo).port;
    await new Promise<void>((resolve) => tmp.close(() => resolve()));
    const e = await failure(client().push({ id: 'dead', url: `http://127.0.0.1:${port}` }, {}));
    expect(e.failureClass).toBe('transient');
    expect(e.message).toContain('to dead');
  });
});

describe('parseRetryAfter strictness', () => {
  it('refuses values Date.parse would misread', () => {
    for (const v of ['3.5', '-1', '2001-03-05', 'Mon 1 Jan']) expect(parseRetryAfter(v), v).toBeUndefined();
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('2015-10-21T07:27:00Z'))).toBe(60_000);
  });
});
