import postgres from 'postgres';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { CHECKER_APP_NAME } from './chaos-cluster.js';
import type { NodeView } from './checker.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { REDIS_URL } from './env.js';
import { NetnsLab } from './netns.js';
import { newKeyDir } from './node.js';
import { spawnMemfed, waitHealthy, type NodeProcess } from './process.js';
import { dropPrefix, uniquePrefix } from './redis.js';

/** Every node listens on this port inside its own namespace (no collisions across namespaces). */
export const NETNS_PORT = 8080;

export interface NetnsNode {
  id: string;
  /** Where the test process reaches the node (its services-link address). */
  url: string;
  db: TestDatabase;
  prefix: string;
  proc: NodeProcess;
  view(): NodeView;
}

/**
 * N `memfed all` processes, each in a network namespace of its own (test/helpers/netns.ts),
 * peered over the routed mesh so `lab.partition*` cuts real links. Postgres and Redis are
 * the shared ones, reached through the lab's forwarders; each node has its own database
 * and queue prefix.
 */
export async function startNetnsMesh(ids: string[], env: Record<string, string> = {}): Promise<{ lab: NetnsLab; nodes: NetnsNode[]; destroy(): Promise<void> }> {
  const lab = await NetnsLab.create(ids);
  const nodes: NetnsNode[] = [];
  const observers: postgres.Sql[] = [];
  try {
    const keyDir = newKeyDir();
    for (const id of ids) await ensureOwnKey(keyDir, id);
    const redisUrl = await lab.expose(REDIS_URL);
    let pgPort: string | undefined;
    for (const id of ids) {
      const db = await createTestDatabase();
      const inside = new URL(db.url);
      pgPort ??= new URL(await lab.expose(db.url)).port;
      inside.hostname = lab.hostIp;
      inside.port = pgPort;
      const prefix = uniquePrefix();
      const nodeEnv: Record<string, string> = {
        NODE_ID: id,
        HTTP_HOST: '0.0.0.0',
        HTTP_PORT: String(NETNS_PORT),
        WORKER_HTTP_PORT: '0',
        DATABASE_URL: inside.toString(),
        DATABASE_POOL_MAX: '5',
        REDIS_URL: redisUrl,
        QUEUE_PREFIX: prefix,
        FED_KEY_DIR: keyDir,
        FED_PEERS: ids.filter((p) => p !== id).map((p) => `${p}=http://${lab.node(p).meshIp}:${NETNS_PORT}`).join(','),
        RECONCILE_INTERVAL_MS: '500',
        CATCHUP_INTERVAL_MS: '2000',
        FED_REQUEST_TIMEOUT_MS: '1500',
        FED_ACK_TIMEOUT_MS: '1500',
        LOG_LEVEL: process.env.MEMFED_TEST_LOG_LEVEL ?? 'warn',
        SHUTDOWN_GRACE_MS: '2000',
        ...env,
      };
      const proc = spawnMemfed(['all'], nodeEnv, { wrap: lab.wrap(id) });
      let observer: postgres.Sql | undefined;
      nodes.push({
        id,
        url: `http://${lab.node(id).svcIp}:${NETNS_PORT}`,
        db,
        prefix,
        proc,
        view() {
          if (!observer) {
            observer = postgres(db.url, { max: 2, connection: { TimeZone: 'UTC', application_name: CHECKER_APP_NAME }, onnotice: () => {}, idle_timeout: 30, connect_timeout: 10 });
            observers.push(observer);
          }
          return { kind: 'memfed', id, sql: observer, peers: ids.filter((p) => p !== id) };
        },
      });
    }
    await Promise.all(
      nodes.map((n) =>
        Promise.race([
          waitHealthy(n.url, 45_000),
          n.proc.exited.then((code) => {
            throw new Error(`${n.id} exited (${code}) before it was ready:\n${n.proc.output().slice(-3000)}`);
          }),
        ]),
      ),
    );
  } catch (err) {
    await teardown();
    throw err;
  }
  async function teardown(): Promise<void> {
    await Promise.allSettled(nodes.map((n) => n.proc.stop()));
    await Promise.allSettled(observers.map((o) => o.end({ timeout: 5 })));
    for (const n of nodes) {
      await n.db.drop().catch(() => {});
      await dropPrefix(n.prefix).catch(() => {});
    }
    await lab.destroy();
  }
  return { lab, nodes, destroy: teardown };
}
