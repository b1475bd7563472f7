import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { prng } from './prng.js';

/**
 * A small fault-injecting TCP proxy (docs/invariants.md, Testing tiers, tier 3) for the HTTP port of a peer.
 *
 * Modes, switchable at runtime with setMode():
 * - pass: bytes flow both ways untouched.
 * - blackhole: accepts, swallows whatever the client sends, never forwards nor answers
 *   (the client hangs until its own timeout). A connection that swallowed bytes stays
 *   blackholed for good: forwarding the rest of a half-eaten request would be garbage.
 * - reset: a `fraction` of request/response exchanges is cut with a TCP RST before the
 *   request reaches the peer (so nothing commits).
 * - delay: every chunk, both directions, is held `ms` (+ up to `jitterMs`), order kept.
 * - drop-response: a `fraction` of exchanges is forwarded to the peer (so it commits),
 *   then the client socket is reset as soon as the response starts, before any byte of
 *   it reaches the client.
 * - respond: a `fraction` of exchanges is answered by the proxy itself with `status`
 *   (e.g. 500, 503, 429; `retryAfterS` adds a Retry-After header) and the connection
 *   closed; the request never reaches the peer (a peer that is up but refuses work).
 * - lossy: `delay` and `reset` at once: every chunk held `ms` (+ `jitterMs`), and a
 *   `loss` fraction of exchanges cut with a RST before the request reaches the peer
 *   (a bad network path: latency and packet loss seen as failed exchanges).
 *
 * Fault decisions are per exchange, not per connection: HTTP clients keep connections
 * alive, so one lucky connection would otherwise carry every later request untouched.
 * An exchange starts with the first client chunk after the previous response began
 * (clients here do not pipeline). Randomness is seeded, so a run can be reproduced.
 */

export type ProxyMode =
  | { kind: 'pass' }
  | { kind: 'blackhole' }
  | { kind: 'reset'; fraction: number }
  | { kind: 'delay'; ms: number; jitterMs?: number }
  | { kind: 'drop-response'; fraction: number }
  | { kind: 'respond'; status: number; fraction: number; retryAfterS?: number }
  | { kind: 'lossy'; ms: number; jitterMs?: number; loss: number };

export const PASS: ProxyMode = { kind: 'pass' };

export interface ProxyStats {
  connections: number;
  /** Request/response exchanges seen (first request chunk of each). */
  exchanges: number;
  /** Exchanges by request line start, e.g. `POST /api/v1/sync/push`. */
  byRoute: Record<string, number>;
  resets: number;
  droppedResponses: number;
  /** Exchanges the proxy answered itself (respond mode). */
  answered: number;
  /** Resets and dropped responses by route (`reset POST /api/v1/sync/push`, `drop GET ...`). */
  faultsByRoute: Record<string, number>;
  /** Connections that swallowed bytes in blackhole mode. */
  blackholed: number;
  delayedChunks: number;
  upstreamErrors: number;
  bytesUp: number;
  bytesDown: number;
  /** Most exchanges awaiting a response at the same time (concurrency at the peer). */
  maxInFlight: number;
}

interface Pending {
  at: number;
  chunk: Buffer;
}

/** One direction of a connection: an ordered, optionally delayed, write queue. */
class Lane {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private lastAt = 0;
  private ended = false;

  constructor(
    private readonly target: () => Socket | null,
    private readonly source: () => Socket | null,
  ) {}

  push(chunk: Buffer, delayMs: number): void {
    const now = Date.now();
    const at = Math.max(now + delayMs, this.lastAt);
    this.lastAt = at;
    if (this.queue.length === 0 && at <= now) {
      this.write(chunk);
      return;
    }
    this.queue.push({ at, chunk });
    this.arm();
  }

  /** Ends the target once everything queued has been written. */
  end(): void {
    this.ended = true;
    if (this.queue.length === 0) this.target()?.end();
  }

  get pending(): number {
    return this.queue.length;
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
  }

  private write(chunk: Buffer): void {
    const t = this.target();
    if (!t || t.destroyed) return;
    if (!t.write(chunk)) {
      // Backpressure: hold the sending side until the receiving side drains.
      const src = this.source();
      src?.pause();
      t.once('drain', () => src?.resume());
    }
  }

  private arm(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const now = Date.now();
      while (this.queue.length > 0 && this.queue[0]!.at <= now) this.write(this.queue.shift()!.chunk);
      if (this.queue.length > 0) this.arm();
      else if (this.ended) this.target()?.end();
    }, Math.max(0, this.queue[0]!.at - Date.now()));
  }
}

interface Conn {
  client: Socket;
  upstream: Socket | null;
  /** Set once the connection swallowed bytes: it never forwards again. */
  blackholed: boolean;
  /** 'idle' until a request starts; 'request' until the response starts. */
  phase: 'idle' | 'request' | 'response';
  dropThisExchange: boolean;
  /** Request line start of the current exchange, e.g. `POST /api/v1/sync/push`. */
  route: string;
  up: Lane;
  down: Lane;
}

/** Destroys a socket, with an RST when asked (Node 20: resetAndDestroy). */
function kill(s: Socket, reset: boolean): void {
  if (s.destroyed) return;
  if (reset) {
    try {
      s.resetAndDestroy();
      return;
    } catch {
      /* not connected any more: a plain destroy will do */
    }
  }
  s.destroy();
}


export class FaultProxy {
  private server: Server | null = null;
  private readonly conns = new Set<Conn>();
  private mode: ProxyMode = PASS;
  private readonly random: () => number;
  private inFlight = 0;
  readonly name: string;
  port = 0;
  readonly stats: ProxyStats = {
    connections: 0,
    exchanges: 0,
    byRoute: {},
    resets: 0,
    droppedResponses: 0,
    answered: 0,
    faultsByRoute: {},
    blackholed: 0,
    delayedChunks: 0,
    upstreamErrors: 0,
    bytesUp: 0,
    bytesDown: 0,
    maxInFlight: 0,
  };

  constructor(
    readonly target: { host?: string; port: number },
    opts: { seed?: number; name?: string } = {},
  ) {
    this.random = prng(opts.seed ?? 0x5eed);
    this.name = opts.name ?? `proxy->${target.port}`;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get currentMode(): ProxyMode {
    return this.mode;
  }

  /** Exchanges whose request was seen and whose response has not started yet. */
  get awaitingResponse(): number {
    return this.inFlight;
  }

  get activeConnections(): number {
    return this.conns.size;
  }

  setMode(mode: ProxyMode): void {
    if ((mode.kind === 'reset' || mode.kind === 'drop-response' || mode.kind === 'respond') && !(mode.fraction >= 0 && mode.fraction <= 1)) throw new Error(`fraction must be in [0, 1]`);
    if (mode.kind === 'lossy' && !(mode.loss >= 0 && mode.loss <= 1)) throw new Error(`loss must be in [0, 1]`);
    this.mode = mode;
  }

  async start(port = 0): Promise<this> {
    const server = createServer({ allowHalfOpen: true }, (client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
    this.server = server;
    return this;
  }

  /** Stops listening and destroys every connection (both sides), timers included. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const c of [...this.conns]) this.teardown(c, false);
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Destroys every open connection now (with RST), e.g. to cut pooled keep-alive sockets. */
  resetAll(): void {
    for (const c of [...this.conns]) {
      this.stats.resets++;
      this.teardown(c, true);
    }
  }

  private delayMs(): number {
    const m = this.mode;
    if (m.kind !== 'delay' && m.kind !== 'lossy') return 0;
    return m.ms + (m.jitterMs ? Math.floor(this.random() * m.jitterMs) : 0);
  }

  private accept(client: Socket): void {
    this.stats.connections++;
    const conn: Conn = {
      client,
      upstream: null,
      blackholed: false,
      phase: 'idle',
      dropThisExchange: false,
      route: '',
      up: new Lane(() => conn.upstream, () => conn.client),
      down: new Lane(() => conn.client, () => conn.upstream),
    };
    this.conns.add(conn);
    client.setNoDelay(true);
    client.on('error', () => this.teardown(conn, false));
    client.on('close', () => this.teardown(conn, false));
    client.on('end', () => {
      if (conn.blackholed || !conn.upstream) return this.teardown(conn, false);
      conn.up.end();
    });
    client.on('data', (chunk: Buffer) => this.fromClient(conn, chunk));
  }

  private connectUpstream(conn: Conn): void {
    const up = createConnection({ host: this.target.host ?? '127.0.0.1', port: this.target.port, allowHalfOpen: true });
    conn.upstream = up;
    up.setNoDelay(true);
    // Handlers ignore an upstream the connection has already let go of (blackhole).
    up.on('error', () => {
      if (conn.upstream !== up) return;
      this.stats.upstreamErrors++;
      // The peer is down or reset us: the client sees a reset too.
      this.teardown(conn, true);
    });
    up.on('close', () => {
      if (conn.upstream !== up) return;
      // A response still queued (delay) is delivered first; the lane then ends the client.
      if (conn.down.pending === 0) this.teardown(conn, false);
    });
    up.on('end', () => {
      if (conn.upstream === up) conn.down.end();
    });
    up.on('data', (chunk: Buffer) => {
      if (conn.upstream === up) this.fromUpstream(conn, chunk);
    });
  }

  private fromClient(conn: Conn, chunk: Buffer): void {
    if (conn.blackholed) return;
    if (this.mode.kind === 'blackhole') {
      conn.blackholed = true;
      this.stats.blackholed++;
      this.swallow(conn);
      return;
    }
    if (conn.phase !== 'request') {
      // A new exchange begins.
      conn.phase = 'request';
      conn.dropThisExchange = false;
      this.stats.exchanges++;
      const line = chunk.subarray(0, 200).toString('latin1').split('\r\n')[0] ?? '';
      const route = line.split(' ').slice(0, 2).join(' ').replace(/\?.*$/, '');
      this.stats.byRoute[route] = (this.stats.byRoute[route] ?? 0) + 1;
      conn.route = route;
      const m = this.mode;
      if ((m.kind === 'reset' && this.random() < m.fraction) || (m.kind === 'lossy' && this.random() < m.loss)) {
        this.stats.resets++;
        this.countFault('reset', route);
        this.teardown(conn, true);
        return;
      }
      if (m.kind === 'respond' && this.random() < m.fraction) {
        this.stats.answered++;
        this.countFault(`answer ${m.status}`, route);
        this.answer(conn, m.status, m.retryAfterS);
        return;
      }
      if (m.kind === 'drop-response' && this.random() < m.fraction) conn.dropThisExchange = true;
      this.inFlight++;
      this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.inFlight);
    }
    if (!conn.upstream) this.connectUpstream(conn);
    this.stats.bytesUp += chunk.length;
    const d = this.delayMs();
    if (d > 0) this.stats.delayedChunks++;
    conn.up.push(chunk, d);
  }

  private fromUpstream(conn: Conn, chunk: Buffer): void {
    if (conn.blackholed) return;
    if (conn.phase === 'request') {
      conn.phase = 'response';
      this.inFlight = Math.max(0, this.inFlight - 1);
      if (conn.dropThisExchange) {
        // The peer has processed the request (it is answering): lose the answer.
        this.stats.droppedResponses++;
        this.countFault('drop', conn.route);
        this.teardown(conn, true);
        return;
      }
    }
    if (this.mode.kind === 'blackhole') {
      // Switched to blackhole while this response was on its way: swallow it.
      conn.blackholed = true;
      this.stats.blackholed++;
      this.swallow(conn);
      return;
    }
    this.stats.bytesDown += chunk.length;
    const d = this.delayMs();
    if (d > 0) this.stats.delayedChunks++;
    conn.down.push(chunk, d);
  }

  private countFault(kind: string, route: string): void {
    const k = `${kind} ${route}`;
    this.stats.faultsByRoute[k] = (this.stats.faultsByRoute[k] ?? 0) + 1;
  }

  /** Zeroes the counters (e.g. between the phases of a scenario). */
  resetStats(): void {
    for (const k of Object.keys(this.stats) as Array<keyof ProxyStats>) {
      const v = this.stats[k];
      if (typeof v === 'number') (this.stats[k] as number) = 0;
      else (this.stats[k] as Record<string, number>) = {};
    }
    this.stats.maxInFlight = this.inFlight;
  }

  /** Answers the exchange with `status` itself, swallows the rest of the request, closes. */
  private answer(conn: Conn, status: number, retryAfterS?: number): void {
    conn.blackholed = true;
    this.swallow(conn);
    const body = JSON.stringify({ error: 'injected by the fault proxy', code: status === 429 ? 'RATE_LIMITED' : 'INJECTED_FAULT' });
    const head = [`HTTP/1.1 ${status} Injected`, 'content-type: application/json', `content-length: ${Buffer.byteLength(body)}`, 'connection: close', ...(retryAfterS !== undefined ? [`retry-after: ${retryAfterS}`] : [])];
    conn.client.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  }

  /** Drops the peer side of a blackholed connection; the client side stays open, unanswered. */
  private swallow(conn: Conn): void {
    if (conn.phase === 'request') this.inFlight = Math.max(0, this.inFlight - 1);
    conn.phase = 'idle';
    conn.up.clear();
    conn.down.clear();
    const up = conn.upstream;
    conn.upstream = null;
    up?.destroy();
  }

  private teardown(conn: Conn, reset: boolean): void {
    if (!this.conns.delete(conn)) return;
    if (conn.phase === 'request') this.inFlight = Math.max(0, this.inFlight - 1);
    conn.up.clear();
    conn.down.clear();
    kill(conn.client, reset);
    const up = conn.upstream;
    conn.upstream = null;
    if (up) kill(up, reset);
  }
}

/** Starts a proxy in front of 127.0.0.1:<port>. */
export function startFaultProxy(targetPort: number, opts: { seed?: number; name?: string; listenPort?: number } = {}): Promise<FaultProxy> {
  return new FaultProxy({ port: targetPort }, opts).start(opts.listenPort ?? 0);
}
