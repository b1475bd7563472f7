/*
 * Postgres going away (terminated backends, a restart, a dropped socket) rejects every
 * query in flight on the lost connections. postgres.js can reject one that no caller is
 * awaiting any more (seen when backends were terminated mid-request); left alone, Node
 * would end the process for it. Such a rejection carries no result anybody waits for, so
 * the process logs it and goes on; any other unhandled rejection is still fatal.
 */

/** SQLSTATEs of a server ending the session: admin_shutdown, crash_shutdown, cannot_connect_now, connection_failure. */
const SERVER_GONE = new Set(['57P01', '57P02', '57P03', '08006', '08003', '08001']);
/** postgres.js's own codes for a socket that closed under a query or could not be opened. */
const SOCKET_GONE = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Whether `err` says a Postgres connection was lost (not a bug, not a refused statement). */
export function isDatabaseConnectionLoss(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return false;
  if (SERVER_GONE.has(code)) return true;
  // A socket error is Postgres's only when postgres.js raised it (it names the address and port).
  return SOCKET_GONE.has(code) && ('address' in err || (err as { name?: unknown }).name === 'PostgresError');
}
