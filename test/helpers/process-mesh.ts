import { ensureOwnKey } from '../../src/federation/keys.js';
import { createDatabase } from '../../src/db/client.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { PrivatePostgres } from './private-postgres.js';
import { REDIS_TOPOLOGY_ENV, REDIS_URL, freePort } from './env.js';
import { newKeyDir } from './node.js';
import { spawnMemfed, waitHealthy, type NodeProcess } from './process.js';
import { dropPrefix, uniquePrefix } from './redis.js';
import { StableFront } from './stable-front.js';

export interface MeshProcess {
  id: string;
  url: string;
  db: TestDatabase;
  prefix: string;
  env: Record<string, string>;
  proc: NodeProcess;
  /**
   * Starts the process again with the same database and prefix, at the same address
   * (`url`, a stable front port the peers are configured with) but listening on a fresh
   * port behind it: re-binding the port just released can collide.
   */
  restart(): Promise<void>;
}

/** A migrated database on a Postgres cluster of its own, dropped with the cluster. */
async function privateClusterDatabase(): Promise<TestDatabase> {
  const pg = await new PrivatePostgres().start();
  const url = await pg.createMigratedDatabase('memfed');
  const database = createDatabase(url, { max: 5 });
  return {
    name: 'memfed',
    url,
    database,
    async drop() {
      await database.close();
      await pg.stop();
    },
  };
}

/**
 * N real `memfed all` processes peered with each other (one shared key dir). With
 * `privateClusters`, each node's database is on a Postgres cluster of its own: a node
 * frozen (SIGSTOP) inside a transaction pins the snapshot xmin of its whole cluster, the
 * change-feed horizon of every database on it, so on a shared cluster it would stall the
 * other nodes' feeds (and every other test file's) until it resumes.
 */
export async function startProcessMesh(
  n: number,
  env: Record<string, string> = {},
  /** `queuePrefix`: each node's QUEUE_PREFIX (e.g. hash-tagged, on a Redis of the test's own: nothing is dropped from the shared one). */
  opts: { privateClusters?: boolean; queuePrefix?: (id: string) => string } = {},
): Promise<{ nodes: MeshProcess[]; destroy(): Promise<void> }> {
  const keyDir = newKeyDir();
  const specs = await Promise.all(Array.from({ length: n }, async (_, i) => ({ id: `proc-${String.fromCharCode(97 + i)}`, front: await new StableFront().start() })));
  for (const s of specs) await ensureOwnKey(keyDir, s.id);
  const nodes: MeshProcess[] = [];
  for (const s of specs) {
    const db = opts.privateClusters ? await privateClusterDatabase() : await createTestDatabase();
    const prefix = opts.queuePrefix?.(s.id) ?? uniquePrefix();
    const listen = await freePort();
    const nodeEnv: Record<string, string> = {
      NODE_ID: s.id,
      HTTP_PORT: String(listen),
      WORKER_HTTP_PORT: '0',
      DATABASE_URL: db.url,
      REDIS_URL,
      ...REDIS_TOPOLOGY_ENV,
      QUEUE_PREFIX: prefix,
      FED_KEY_DIR: keyDir,
      FED_PEERS: specs.filter((p) => p.id !== s.id).map((p) => `${p.id}=http://127.0.0.1:${p.front.port}`).join(','),
      RECONCILE_INTERVAL_MS: '500',
      FED_REQUEST_TIMEOUT_MS: '1500',
      LOG_LEVEL: 'warn',
      SHUTDOWN_GRACE_MS: '2000',
      ...env,
    };
    s.front.retarget(listen);
    const node: MeshProcess = {
      id: s.id,
      url: `http://127.0.0.1:${s.front.port}`,
      db,
      prefix,
      env: nodeEnv,
      proc: spawnMemfed(['all'], nodeEnv),
      async restart() {
        const port = await freePort();
        nodeEnv.HTTP_PORT = String(port);
        s.front.retarget(port);
        node.proc = spawnMemfed(['all'], nodeEnv);
        await waitHealthy(node.url);
      },
    };
    nodes.push(node);
  }
  await Promise.all(nodes.map((m) => waitHealthy(m.url)));
  return {
    nodes,
    async destroy() {
      await Promise.all(nodes.map((m) => m.proc.stop()));
      await Promise.all(specs.map((s) => s.front.stop()));
      for (const m of nodes) {
        await m.db.drop();
        if (!opts.queuePrefix) await dropPrefix(m.prefix);
      }
    },
  };
}
