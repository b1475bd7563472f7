import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../helpers/node.js';

/** A raw TCP client: what it received, and a promise that settles when the server closes it. */
function rawClient(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (d) => (received += d));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const connected = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, closed, connected, received: () => received };
}

/** Writes one byte of `text` every `everyMs` until the socket closes or the text runs out. */
function trickle(socket: net.Socket, text: string, everyMs: number): () => void {
  let i = 0;
  const t = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(t);
    socket.write(text[i++]!);
  }, everyMs);
  return () => clearInterval(t);
}

const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms))]);

describe('slow clients', () => {
  let n: TestNode;
  beforeAll(async () => {
    n = await startTestNode({ id: 'slow-clients', env: { HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '1500' } });
  });
  afterAll(async () => {
    await n?.destroy();
  });

  it('a client trickling its headers (slowloris) is answered 408 and closed after HTTP_HEADERS_TIMEOUT_MS', async () => {
    const c = rawClient(n.port);
    await c.connected;
    const stop = trickle(c.socket, `GET /api/v1/health HTTP/1.1\r\nHost: x\r\n${'X-Slow: y\r\n'.repeat(200)}`, 100);
    // Node's defaults (60 s for headers, 300 s for the request) would hold it far longer.
    await within(c.closed, 15_000, 'the slowloris connection closed');
    stop();
    expect(c.received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('a client holding a partial body open is answered 408 and closed after HTTP_REQUEST_TIMEOUT_MS', async () => {
    const c = rawClient(n.port);
    await c.connected;
    c.socket.write('POST /api/v1/memories HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"title":"slow');
    const stop = trickle(c.socket, 'x'.repeat(4000), 100);
    await within(c.closed, 15_000, 'the partial-body connection closed');
    stop();
    expect(c.received()).toMatch(/^HTTP\/1\.1 408/);
  });
});

describe('HTTP_MAX_CONNECTIONS', () => {
  let n: TestNode;
  beforeAll(async () => {
    // Default (20 s / 30 s) timeouts: only the cap can close a connection within the test's bounds.
    n = await startTestNode({ id: 'max-connections', env: { HTTP_MAX_CONNECTIONS: '4' } });
  });
  afterAll(async () => {
    await n?.destroy();
  });

  it('connections beyond HTTP_MAX_CONNECTIONS are refused at once; the ones held keep working', async () => {
    const held = Array.from({ length: 4 }, () => rawClient(n.port));
    await Promise.all(held.map((c) => c.connected));
    // The server counts a connection once it accepted it: let it see all four.
    await new Promise((r) => setTimeout(r, 200));
    const extra = rawClient(n.port);
    await within(extra.closed, 5_000, 'the connection over the cap closed');
    expect(extra.received()).toBe('');
    // A held connection still gets its answer.
    const first = held[0]!;
    first.socket.write('GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await within(first.closed, 10_000, 'the held connection answered');
    expect(first.received()).toMatch(/^HTTP\/1\.1 200/);
    for (const c of held) c.socket.destroy();
  });
});

describe('a client that leaves mid-body', () => {
  let n: TestNode;
  beforeAll(async () => {
    n = await startTestNode({ id: 'leaving-client', role: 'api' });
  });
  afterAll(async () => {
    await n?.destroy();
  });

  it('is counted as a 4xx, never a 5xx, and the node goes on serving', async () => {
    const fivexx = async () => {
      const text = await (await fetch(`${n.url}/metrics`)).text();
      return text.split('\n').filter((l) => l.startsWith('memfed_http_request_duration_seconds_count') && l.includes('status="5xx"')).reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);
    };
    for (let i = 0; i < 5; i++) {
      const c = rawClient(n.port);
      await c.connected;
      c.socket.write('POST /api/v1/memories HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"title":"half');
      await new Promise((r) => setTimeout(r, 50));
      c.socket.destroy();
      await c.closed;
    }
    await new Promise((r) => setTimeout(r, 200));
    const text = await (await fetch(`${n.url}/metrics`)).text();
    const fourxx = text.split('\n').filter((l) => l.startsWith('memfed_http_request_duration_seconds_count') && l.includes('route="/api/v1/memories"') && l.includes('status="4xx"'));
    expect(fourxx.reduce((a, l) => a + Number(l.split(' ').at(-1)), 0)).toBe(5);
    expect(await fivexx()).toBe(0);
    const ok = await fetch(`${n.url}/api/v1/memories`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"title":"after","content":"c"}' });
    expect(ok.status).toBe(201);
  });
});
