import { ensureOwnKey } from '../../src/federation/keys.js';
import { createDatabase } from '../../src/db/client.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { PrivatePostgres } from './private-postgres.js';
import { REDIS_TOPOLOGY_ENV, REDIS_URL, freePort } from './env.js';
import { newKeyDir } from './node.js';
import { spawnMemfed, waitHealthy, type NodeProcess } from './process.js';
import { dropPrefix, uniquePrefix } from './redis.js';
import { RoundRobinFront } from './round-robin-front.js';
import { StableFront } from './stable-front.js';

export interface MeshProcess {
  id: string;
  url: string;
  db: TestDatabase;
  prefix: string;
  env: Record<string, string>;
  /** The node's process (`memfed all`); for a node of several processes, its first API process. */
  proc: NodeProcess;
  /** Every process of the node: one `memfed all`, or its API processes then its workers. */
  procs: NodeProcess[];
  /** Each API process's own address (behind `url`). */
  apiUrls: string[];
  /** Each worker process's metrics/health address (nodes of several processes only). */
  workerUrls: string[];
  /** The HTTP front when the mesh runs with `processes` (it counts pushes per sender). */
  front?: RoundRobinFront;
  /**
   * Starts the process again with the same database and prefix, at the same address
   * (`url`, a stable front port the peers are configured with) but listening on a fresh
   * port behind it: re-binding the port just released can collide.
   */
  restart(): Promise<void>;
  /**
   * Whether the node's address (`url`, what its peers dial) takes connections; false: the
   * front resets every new one (a node of one process: and closes the open ones). The node's own processes, reached at `apiUrls`, and its
   * outbound requests are untouched.
   */
  setReachable(reachable: boolean): void;
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

/** How a node runs: one `memfed all` (undefined), or `api` + `worker` separate processes. */
export type NodeProcesses = { api: number; worker: number } | undefined;

/**
 * N real `memfed all` processes peered with each other (one shared key dir). With
 * `privateClusters`, each node's database is on a Postgres cluster of its own: a node
 * frozen (SIGSTOP) inside a transaction pins the snapshot xmin of its whole cluster, the
 * change-feed horizon of every database on it, so on a shared cluster it would stall the
 * other nodes' feeds (and every other test file's) until it resumes.
 *
 * With `processes`, node i runs as `processes(i)` says: N `memfed api` and M `memfed worker`
 * processes of one node (same NODE_ID, database, queue prefix and key dir; PROCESS_ID
 * `<node>-api-<k>` / `<node>-worker-<k>`), its URL an HTTP front handing requests to its
 * API processes in turn. Every node then has such a front (one target for a single
 * process), so pushes can be counted at any receiver.
 */
export async function startProcessMesh(
  n: number,
  env: Record<string, string> = {},
  /**
   * `queuePrefix`: each node's QUEUE_PREFIX (e.g. hash-tagged, on a Redis of the test's own:
   * nothing is dropped from the shared one).
   */
  opts: { privateClusters?: boolean; processes?: (index: number) => NodeProcesses; nodeEnv?: (index: number) => Record<string, string>; queuePrefix?: (id: string) => string } = {},
): Promise<{ nodes: MeshProcess[]; keyDir: string; destroy(): Promise<void> }> {
  const keyDir = newKeyDir();
  const specs = await Promise.all(
    Array.from({ length: n }, async (_, i) => ({ id: `proc-${String.fromCharCode(97 + i)}`, front: opts.processes ? await new RoundRobinFront().start() : await new StableFront().start(), split: opts.processes?.(i) })),
  );
  const point = (front: StableFront | RoundRobinFront, ports: number[]) => (front instanceof StableFront ? front.retarget(ports[0] ?? null) : front.retarget(ports));
  for (const s of specs) await ensureOwnKey(keyDir, s.id);
  const nodes: MeshProcess[] = [];
  for (const [i, s] of specs.entries()) {
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
      ...opts.nodeEnv?.(i),
    };
    const url = `http://127.0.0.1:${s.front.port}`;
    const front = s.front instanceof RoundRobinFront ? { front: s.front } : {};
    if (s.split) {
      const apiPorts = await Promise.all(Array.from({ length: s.split.api }, () => freePort()));
      const workerPorts = await Promise.all(Array.from({ length: s.split.worker }, () => freePort()));
      const apis = apiPorts.map((port, k) => spawnMemfed(['api'], { ...nodeEnv, HTTP_PORT: String(port), PROCESS_ID: `${s.id}-api-${k + 1}` }));
      const workers = workerPorts.map((port, k) => spawnMemfed(['worker'], { ...nodeEnv, WORKER_HTTP_PORT: String(port), PROCESS_ID: `${s.id}-worker-${k + 1}` }));
      point(s.front, apiPorts);
      nodes.push({
        id: s.id,
        url,
        db,
        prefix,
        env: nodeEnv,
        proc: apis[0]!,
        procs: [...apis, ...workers],
        apiUrls: apiPorts.map((p) => `http://127.0.0.1:${p}`),
        workerUrls: workerPorts.map((p) => `http://127.0.0.1:${p}`),
        ...front,
        restart: () => Promise.reject(new Error('restart: not supported for a node of several processes')),
        setReachable: (reachable) => point(s.front, reachable ? apiPorts : []),
      });
      continue;
    }
    point(s.front, [listen]);
    const node: MeshProcess = {
      id: s.id,
      url,
      db,
      prefix,
      env: nodeEnv,
      proc: spawnMemfed(['all'], nodeEnv),
      procs: [],
      apiUrls: [`http://127.0.0.1:${listen}`],
      workerUrls: [],
      ...front,
      async restart() {
        const port = await freePort();
        nodeEnv.HTTP_PORT = String(port);
        point(s.front, [port]);
        node.proc = spawnMemfed(['all'], nodeEnv);
        node.procs = [node.proc];
        node.apiUrls = [`http://127.0.0.1:${port}`];
        await waitHealthy(node.url);
      },
      setReachable(reachable) {
        point(s.front, reachable ? [Number(nodeEnv.HTTP_PORT)] : []);
        // Open keep-alive connections would carry on past the cut.
        if (!reachable && s.front instanceof StableFront) s.front.dropConnections();
      },
    };
    node.procs = [node.proc];
    nodes.push(node);
  }
  await Promise.all(nodes.flatMap((m) => [...m.apiUrls, ...m.workerUrls].map((u) => waitHealthy(u))));
  return {
    nodes,
    keyDir,
    async destroy() {
      await Promise.all(nodes.flatMap((m) => m.procs.map((p) => p.stop())));
      await Promise.all(specs.map((s) => s.front.stop()));
      for (const m of nodes) {
        await m.db.drop();
        if (!opts.queuePrefix) await dropPrefix(m.prefix);
      }
    },
  };
}
