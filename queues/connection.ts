import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisTarget } from '../src/config.js';
import { REDIS_TOPOLOGY_UNREACHABLE } from '../src/reachability.js';

/** A connection to any Redis target: one server or Sentinel (Redis), or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

export type RedisUse = 'worker' | 'producer' | 'subscriber';

const retry = (n: number) => Math.min(n * 200, 2000);

/** A string target is a single server's URL (tests, tools). */
const targetOf = (target: RedisTarget | string): RedisTarget => (typeof target === 'string' ? { kind: 'single', url: target } : target);

/** The per-connection options of a use (for a cluster: of each node's connection). */
function optionsFor(use: RedisUse, name: string): RedisOptions {
  const common: RedisOptions = { connectionName: `memfed-${name}`, lazyConnect: false };
  return use === 'producer'
    ? // commandTimeout: a Redis that accepts but never answers (stalled) must not hang a request either.
      // autoResendUnfulfilledCommands off: a command whose caller already failed (timed out
      // while the connection died) must not run after a reconnect, e.g. a nonce claimed
      // for a request that was answered 503 would refuse its retry as a replay.
      { ...common, maxRetriesPerRequest: 1, enableOfflineQueue: false, autoResendUnfulfilledCommands: false, connectTimeout: 2000, commandTimeout: 2000, retryStrategy: retry }
    : { ...common, maxRetriesPerRequest: null, retryStrategy: retry };
}

/**
 * Redis connections by use. Workers and subscribers block and must retry for ever
 * (maxRetriesPerRequest: null, as BullMQ requires); producers in the API fail fast so a
 * Redis outage never hangs a request: the commit stands and the reconciler delivers later.
 */
export function createRedis(url: string, use: RedisUse, name: string): Redis;
export function createRedis(target: RedisTarget | string, use: RedisUse, name: string): RedisClient;
export function createRedis(target: RedisTarget | string, use: RedisUse, name: string): RedisClient {
  const t = targetOf(target);
  const opts = optionsFor(use, name);
  let client: RedisClient;
  if (t.kind === 'cluster') {
    const { enableOfflineQueue, retryStrategy: _perNode, ...redisOptions } = opts;
    const cluster: ClusterOptions = {
      redisOptions,
      // A node that goes away is not retried on its own: the cluster client refreshes the
      // slot map and reconnects through the nodes that are left.
      clusterRetryStrategy: retry,
      enableOfflineQueue: enableOfflineQueue ?? true,
      // A failover takes the cluster a few seconds (cluster-node-timeout plus the election):
      // commands meanwhile wait and retry instead of failing at once.
      retryDelayOnClusterDown: 300,
      retryDelayOnFailover: 300,
      retryDelayOnTryAgain: 300,
      maxRedirections: use === 'producer' ? 8 : 64,
      slotsRefreshTimeout: 2000,
      // Sharded pub/sub (SSUBSCRIBE) for the quorum ack channel (queues/acks.ts).
      shardedSubscribers: use === 'subscriber',
    };
    client = new Cluster(t.nodes, cluster);
  } else if (t.kind === 'sentinel') {
    // ioredis asks the sentinels for the primary at each (re)connect, so after a failover
    // every connection finds the new primary by itself. A primary demoted while it still
    // answers (a manual failover) refuses writes with READONLY: reconnect, which asks the
    // sentinels again (the failed command is not resent: its caller retries). Not ioredis's
    // failoverDetector: a +switch-master arriving while a connection is being re-made
    // ends that connection for good (status "end", never retried).
    client = new Redis({ ...opts, sentinels: t.sentinels, name: t.name, sentinelRetryStrategy: retry, reconnectOnError: (err) => /^READONLY/.test(err.message) });
  } else {
    client = new Redis(t.url, opts);
  }
  // Errors surface through the commands that fail; an unhandled 'error' event would crash.
  client.on('error', () => {});
  return client;
}

/** One connection attempt and a PING, no retries: how a starting role learns Redis answers. */
export async function pingRedis(target: RedisTarget | string, timeoutMs = 2000): Promise<void> {
  const t = targetOf(target);
  const base: RedisOptions = { connectionName: 'memfed-probe', lazyConnect: true, connectTimeout: timeoutMs, commandTimeout: timeoutMs, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null };
  const probe: RedisClient =
    t.kind === 'cluster'
      ? new Cluster(t.nodes, { lazyConnect: true, redisOptions: base, clusterRetryStrategy: () => null, enableOfflineQueue: false, slotsRefreshTimeout: timeoutMs })
      : t.kind === 'sentinel'
        ? new Redis({ ...base, sentinels: t.sentinels, name: t.name, sentinelRetryStrategy: () => null })
        : new Redis(t.url, base);
  // With no retries, connect() rejects with a bare "Connection is closed."; the socket's
  // own error (ECONNREFUSED, ENOTFOUND, ...) is the one worth reporting.
  let socketError: Error | undefined;
  probe.on('error', (err: Error) => (socketError ??= err));
  try {
    await probe.connect().catch((err: unknown) => {
      throw t.kind === 'single' ? (socketError ?? err) : topologyUnreachable(t, err);
    });
    await probe.ping();
  } finally {
    probe.disconnect();
  }
}

/*
 * A cluster or sentinel set of which no member answered fails with the topology's own
 * error ("Failed to refresh slots cache.", "All sentinels are unreachable ..."), without a
 * socket code: marked as unreachable (src/reachability.ts), so a start waits
 * STARTUP_WAIT_MS for it and then ends in the usual one line.
 */
function topologyUnreachable(t: RedisTarget, err: unknown): unknown {
  const e = err as { message?: string; lastNodeError?: { message?: string } } | undefined;
  const all = /Failed to refresh slots cache|None of startup nodes is available|All sentinels are unreachable/.test(String(e?.message));
  if (!all) return err;
  const detail = e?.lastNodeError?.message ? `${e.message} ${e.lastNodeError.message}` : String(e?.message);
  return Object.assign(new Error(t.kind === 'cluster' ? `no cluster node answered: ${detail}` : `no sentinel named a reachable primary: ${detail}`), { code: REDIS_TOPOLOGY_UNREACHABLE });
}
