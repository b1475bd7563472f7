import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PeerClient, PeerRequestError, parseRetryAfter } from '../../src/federation/client.js';

describe('PeerRequestError', () => {
  it('is not "too large" unless it says so', () => {
    expect(new PeerRequestError('transient', 'x').tooLarge).toBe(false);
    expect(new PeerRequestError('transient', 'x', 200, undefined, true).tooLarge).toBe(true);
  });
});

describe('parseRetryAfter: only the exact forms', () => {
  it('an HTTP date with anything before it is ignored', () => {
    const now = Date.parse('Sun, 06 Nov 1994 08:49:30 GMT');
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', now)).toBe(7000);
    expect(parseRetryAfter('xSun, 06 Nov 1994 08:49:37 GMT', now)).toBeUndefined();
  });

  it('a date-shaped value that is no date is ignored', () => {
    expect(parseRetryAfter('Xyz, 99 Foo 1994 25:61:61 GMT')).toBeUndefined();
  });
});

describe('PeerClient response handling', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const mode = (req.url ?? '').split('/')[1];
        if (mode === 'huge') {
          // Just over the client's 8 MiB response cap.
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(Buffer.alloc(8 * 1024 * 1024 + 1, 0x20));
        } else if (mode === 'cut') {
          // Promise a long body, send part of it, then drop the connection.
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
          res.write('{"applied":');
          setImmediate(() => res.socket?.destroy());
        } else if (mode === 'verbose') {
          res.writeHead(400, { 'content-type': 'text/plain' });
          res.end('e'.repeat(1000));
        } else {
          res.writeHead(500);
          res.end();
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

  const client = () => new PeerClient({ selfId: 'node-a', signingKey: null, apiKey: '', timeoutMs: 10_000 });
  const peer = (mode: string) => ({ id: `peer-${mode}`, url: `${base}/${mode}` });

  async function failure(p: Promise<unknown>): Promise<PeerRequestError> {
    try {
      await p;
    } catch (err) {
      expect(err).toBeInstanceOf(PeerRequestError);
      return err as PeerRequestError;
    }
    throw new Error('expected a PeerRequestError');
  }

  it('a response over 8 MiB is a transient failure marked too large (ask for less)', async () => {
    const e = await failure(client().since(peer('huge'), { cursor: '0' }));
    expect(e.failureClass).toBe('transient');
    expect(e.tooLarge).toBe(true);
    expect(e.status).toBe(200);
    expect(e.message).toBe('[transient] GET /api/v1/sync/since to peer-huge: response exceeds 8388608 bytes');
  });

  it('a connection dropped mid-body is a transient failure that says so', async () => {
    const e = await failure(client().push(peer('cut'), { memories: [] }));
    expect(e.failureClass).toBe('transient');
    expect(e.tooLarge).toBe(false);
    expect(e.status).toBe(200);
    expect(e.message).toMatch(/^\[transient\] POST \/api\/v1\/sync\/push to peer-cut: reading response: \S/);
  });

  it('an error body is quoted up to 300 characters', async () => {
    const e = await failure(client().push(peer('verbose'), { memories: [] }));
    expect(e.failureClass).toBe('permanent');
    expect(e.message).toBe(`[permanent] POST /api/v1/sync/push to peer-verbose: HTTP 400 ${'e'.repeat(300)}`);
  });

  it('a connection the peer drops before answering names the socket error, not a timeout', async () => {
    const rude = createNetServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => rude.listen(0, '127.0.0.1', resolve));
    try {
      const e = await failure(client().push({ id: 'peer-rude', url: `http://127.0.0.1:${(rude.address() as AddressInfo).port}` }, {}));
      expect(e.failureClass).toBe('transient');
      expect(e.message).toMatch(/^\[transient\] POST \/api\/v1\/sync\/push to peer-rude: [A-Z_]+$/);
    } finally {
      await new Promise<void>((resolve) => rude.close(() => resolve()));
    }
  });
});
