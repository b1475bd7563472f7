import { Server as HttpsServer, createServer as createHttpsServer } from 'node:https';
import type { Server } from 'node:http';
import { serve, type ServerType } from '@hono/node-server';
import type { Config } from '../src/config.js';
import { serverTlsOptions, type TlsMaterial } from '../src/tls.js';

export interface ListenOptions {
  limits: Config['httpServer'];
  /** HTTPS when it holds an identity (src/tls.ts); plain HTTP otherwise. */
  tls: TlsMaterial | null;
}

/** Node checks request and header deadlines on a timer; often enough for the shortest one. */
export const checkingIntervalMs = (limits: Config['httpServer']) => Math.max(100, Math.min(5_000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)));

/**
 * Listens and resolves once bound (rejects on EADDRINUSE and the like). Slow clients are
 * cut off: a request whose headers are not in after headersTimeoutMs, or that is not
 * complete (body included) after requestTimeoutMs, is answered 408 and its socket
 * closed; connections beyond maxConnections are refused at accept.
 */
export function listen(app: { fetch: (req: Request, env?: unknown) => Response | Promise<Response> }, hostname: string, port: number, opts: ListenOptions): Promise<ServerType> {
  const { limits } = opts;
  const timeouts = { requestTimeout: limits.requestTimeoutMs, headersTimeout: limits.headersTimeoutMs, keepAliveTimeout: limits.keepAliveTimeoutMs, connectionsCheckingInterval: checkingIntervalMs(limits) };
  const tls = serverTlsOptions(opts.tls);
  return new Promise((resolve, reject) => {
    const base = { fetch: app.fetch, hostname, port };
    const server = (tls ? serve({ ...base, createServer: createHttpsServer, serverOptions: { ...tls, ...timeouts } }, () => resolve(server)) : serve({ ...base, serverOptions: timeouts }, () => resolve(server))) as Server;
    server.maxConnections = limits.maxConnections;
    server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    server.once('error', reject);
  });
}

export function boundUrl(server: ServerType, host: string): string {
  const addr = server.address();
  return `${server instanceof HttpsServer ? 'https' : 'http'}://${host}:${typeof addr === 'object' && addr ? addr.port : 0}`;
}

export function closeServer(server: ServerType): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Idle keep-alive sockets would hold close() open; in-flight requests still finish.
    (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  });
}
