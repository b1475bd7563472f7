import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './env.js';

/** Push requests one sender made through the front: in flight now, the most at once, in all. */
export interface PushCount {
  inFlight: number;
  maxInFlight: number;
  total: number;
}

/**
 * The one URL of a node that runs several API processes: an HTTP proxy handing each
 * request, not each connection, to the next process in turn (clients keep connections
 * alive, so per-connection balancing would pin a peer to one process). It counts the
 * federation pushes in flight per sender (`x-peer-id`): a node's push to one peer must
 * never run twice at once, whichever of its worker processes runs it.
 *
 * While no target is set, requests are cut (the socket destroyed), which clients see as
 * a dropped connection and retry.
 */
export class RoundRobinFront {
  private server: Server | null = null;
  private targets: number[] = [];
  private next = 0;
  private pushDelayMs = 0;
  private readonly agent = new Agent({ keepAlive: true });
  readonly pushes = new Map<string, PushCount>();
  port = 0;

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.forward(req, res));
    // Peers' keep-alive sockets must not hold stop() up.
    this.server.keepAliveTimeout = 1000;
    this.port = await listenOnLoopback(this.server);
    return this;
  }

  /** Forward to these ports, in turn. */
  retarget(ports: number[]): void {
    this.targets = [...ports];
  }

  /** Holds every push request this long before forwarding it (a slow receiver: runs overlap). */
  delayPushes(ms: number): void {
    this.pushDelayMs = ms;
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    if (this.targets.length === 0) return void req.socket.destroy();
    const port = this.targets[this.next++ % this.targets.length]!;
    const sender = req.method === 'POST' && req.url?.startsWith('/api/v1/sync/push') ? String(req.headers['x-peer-id'] ?? '?') : null;
    let done: (() => void) | null = null;
    if (sender !== null) {
      const c = this.pushes.get(sender) ?? { inFlight: 0, maxInFlight: 0, total: 0 };
      this.pushes.set(sender, c);
      c.inFlight++;
      c.total++;
      c.maxInFlight = Math.max(c.maxInFlight, c.inFlight);
      done = () => {
        done = null;
        c.inFlight--;
      };
    }
    // Counted until the answer is complete or the exchange is cut, once.
    res.once('close', () => done?.());
    const upstream = request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers, agent: this.agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => req.socket.destroy());
    if (sender !== null && this.pushDelayMs > 0) {
      req.pause();
      setTimeout(() => req.pipe(upstream), this.pushDelayMs);
    } else req.pipe(upstream);
  }

  async stop(): Promise<void> {
    this.retarget([]);
    const s = this.server;
    this.server = null;
    this.agent.destroy();
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }
}
