import { Redis, type RedisOptions } from 'ioredis';

/**
 * Redis connections by use. Workers and subscribers block and must retry for ever
 * (maxRetriesPerRequest: null, as BullMQ requires); producers in the API fail fast so a
 * Redis outage never hangs a request: the commit stands and the reconciler delivers later.
 */
export function createRedis(url: string, use: 'worker' | 'producer' | 'subscriber', name: string): Redis {
  const common: RedisOptions = { connectionName: `memfed-${name}`, lazyConnect: false };
  const opts: RedisOptions =
    use === 'producer'
      ? // commandTimeout: a Redis that accepts but never answers (stalled) must not hang a request either.
        // autoResendUnfulfilledCommands off: a command whose caller already failed (timed out
        // while the connection died) must not run after a reconnect, e.g. a nonce claimed
        // for a request that was answered 503 would refuse its retry as a replay.
        { ...common, maxRetriesPerRequest: 1, enableOfflineQueue: false, autoResendUnfulfilledCommands: false, connectTimeout: 2000, commandTimeout: 2000, retryStrategy: (n) => Math.min(n * 200, 2000) }
      : { ...common, maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(n * 200, 2000) };
  const redis = new Redis(url, opts);
  // Errors surface through the commands that fail; an unhandled 'error' event would crash.
  redis.on('error', () => {});
  return redis;
}

/** One connection attempt and a PING, no retries: how a starting role learns Redis answers. */
export async function pingRedis(url: string, timeoutMs = 2000): Promise<void> {
  const probe = new Redis(url, { connectionName: 'memfed-probe', lazyConnect: true, connectTimeout: timeoutMs, commandTimeout: timeoutMs, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  // With no retries, connect() rejects with a bare "Connection is closed."; the socket's
  // own error (ECONNREFUSED, ENOTFOUND, ...) is the one worth reporting.
  let socketError: Error | undefined;
  probe.on('error', (err: Error) => (socketError ??= err));
  try {
    await probe.connect().catch((err: unknown) => {
      throw socketError ?? err;
    });
    await probe.ping();
  } finally {
    probe.disconnect();
  }
}
