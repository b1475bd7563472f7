import { serve, type ServerType } from '@hono/node-server';

/** Listens and resolves once bound (rejects on EADDRINUSE and the like). */
export function listen(app: { fetch: (req: Request) => Response | Promise<Response> }, hostname: string, port: number): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname, port }, () => resolve(server));
    server.once('error', reject);
  });
}

export function boundUrl(server: ServerType, host: string): string {
  const addr = server.address();
  return `http://${host}:${typeof addr === 'object' && addr ? addr.port : 0}`;
}

export function closeServer(server: ServerType): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Idle keep-alive sockets would hold close() open; in-flight requests still finish.
    (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  });
}
