import type { MiddlewareHandler } from 'hono';
import type { TLSSocket } from 'node:tls';
import { ApiError } from '../../errors.js';

/** The socket a request came in on (@hono/node-server passes `{ incoming }` as the env). */
function tlsSocket(env: unknown): TLSSocket | null {
  const socket = (env as { incoming?: { socket?: unknown } } | undefined)?.incoming?.socket as TLSSocket | undefined;
  return socket && typeof socket.getPeerCertificate === 'function' ? socket : null;
}

/**
 * FED_REQUIRE_CLIENT_CERT: a federation request must come over TLS with a client
 * certificate that TLS_CA_FILE verified. The server asks for a certificate but lets the
 * handshake finish without one (src/tls.ts), so the refusal is an answer in the service's
 * envelope: 401 CLIENT_CERT_REQUIRED (none presented), 403 CLIENT_CERT_INVALID (not
 * signed by the CA, expired, ...).
 */
export function requireClientCert(): MiddlewareHandler {
  return async (c, next) => {
    const socket = tlsSocket(c.env);
    const presented = socket !== null && Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
    // Both: Node reports a resumed TLS 1.3 session as authorized even when the client never
    // presented a certificate (the session then carries none).
    if (presented && socket.authorized) return next();
    if (!presented) throw new ApiError(401, 'CLIENT_CERT_REQUIRED', 'federation requests need a TLS client certificate signed by this node\'s CA');
    throw new ApiError(403, 'CLIENT_CERT_INVALID', `client certificate refused: ${socket.authorizationError ?? 'not trusted'}`);
  };
}
