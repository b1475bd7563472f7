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
