import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { listenOnLoopback } from './env.js';

/**
 * A TCP forwarder that keeps one port bound for the whole test while the server behind it
 * stops and starts again on a fresh port each time. Restarting a server on the port it
 * just released can collide (any socket of any process may have taken it meanwhile); its
 * clients are configured with one address, so they get this one instead.
 *
 * While no target is set (the server is down) connections are accepted and reset at
 * once, which clients see as a dropped connection and retry.
 */
export class StableFront {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private target: number | null = null;
  port = 0;

  async start(): Promise<this> {
    this.server = createServer((client) => {
      this.sockets.add(client);
      client.once('close', () => this.sockets.delete(client));
      client.on('error', () => {});
      // Down: reset at once, the nearest a listening port comes to refusing.
      if (this.target === null) return void client.resetAndDestroy();
      const upstream = createConnection({ host: '127.0.0.1', port: this.target });
      this.sockets.add(upstream);
      upstream.once('close', () => {
        this.sockets.delete(upstream);
        client.destroy();
      });
      upstream.on('error', () => client.destroy());
      client.once('close', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    this.port = await listenOnLoopback(this.server);
    return this;
  }

  /** Forward new connections to `port` (null: close them at once). */
  retarget(port: number | null): void {
    this.target = port;
  }

  /** Closes every open connection (with no target, new ones are reset too: the server is cut off). */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    this.retarget(null);
    for (const s of this.sockets) s.destroy();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
