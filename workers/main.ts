import { serve, type ServerType } from '@hono/node-server';
import { createApp, createOpsApp } from '../src/api/app.js';
import type { AppDeps, HealthProbe } from '../src/api/deps.js';
import { USAGE, runToolCommand } from '../src/cli/commands.js';
import { ConfigError, describeConfig, loadConfig, type Config } from '../src/config.js';
import { createDatabase } from '../src/db/client.js';
import { prepareDatabase } from '../src/db/migrate.js';
import { PeerClient } from '../src/federation/client.js';
import { KeyRing, ensureOwnKey, loadAuditKeys } from '../src/federation/keys.js';
import { NonceStore } from '../src/federation/nonces.js';
import { createLogger } from '../src/logger.js';
import { throttleRefusals } from '../src/audit/throttle.js';
import { registerDatabaseCollectors } from '../src/collectors.js';
import { headKeyId } from '../src/store/audit.js';
import { peerWasFailing } from '../src/store/cursors.js';
import { loadPolicy } from '../src/governance.js';
import { createMetrics } from '../src/metrics.js';
import { AckTracker } from '../queues/acks.js';
import { QueueAuditRecorder } from '../queues/audit.js';
import { BULL_BOARD_PATH, bullBoardApp } from '../queues/bull-board.js';
import { registerQueueCollectors } from '../queues/metrics.js';
import { createRedis } from '../queues/connection.js';
import { closeQueues, createQueues, enqueueCatchup, enqueueDlqReplay, enqueuePush } from '../queues/producers.js';
import { QueueReplication } from '../queues/replication.js';
import { startWorkers } from './runtime.js';

/*
 * The composition root for every role. It lives in workers/ because that is the top of
 * the import graph (src <- queues <- workers): only here may all three be wired together.
 */

export type Role = 'api' | 'worker' | 'all';

export interface RunningNode {
  config: Config;
  /** Base URL of the API (role api/all), with the port actually bound. */
  apiUrl?: string;
  /** Base URL of the worker role's metrics/health server, when it runs. */
  workerUrl?: string;
  close(): Promise<void>;
}

/** Starts a node in a role; resolves once it serves. */
export async function startNode(role: Role, config: Config): Promise<RunningNode> {
  const logger = createLogger(config.logLevel, { node: config.nodeId, role });
  const metrics = createMetrics({ nodeId: config.nodeId, role });
  logger.info({ config: describeConfig(config) }, 'starting memfed');
  // Before any connection is opened: an invalid policy must stop the process, not leave
  // it hanging on open pools after the error.
  const policy = await loadPolicy(config.governance);
  if (policy) logger.info({ policy: policy.source }, 'governance policy loaded');

  await prepareDatabase(config.databaseUrl);
  const database = createDatabase(config.databaseUrl, { max: config.databasePoolMax });
  const own = await ensureOwnKey(config.federation.keyDir, config.nodeId);
  if (own.generated) logger.info({ pub: own.pubPath }, 'generated this node\'s Ed25519 key; enrol it on peers by copying the .pub file');
  const keys = await KeyRing.load(config.federation.keyDir, config.nodeId);

  const producer = createRedis(config.redisUrl, 'producer', 'producer');
  const queues = createQueues(producer, config.queuePrefix);
  const probes: HealthProbe[] = [
    { name: 'postgres', check: async () => void (await database.sql`SELECT 1`) },
    { name: 'redis', check: async () => void (await producer.ping()) },
  ];
  const closers: Array<() => Promise<unknown>> = [];
  let apiUrl: string | undefined;
  let workerUrl: string | undefined;
  const peers = new Map(config.federation.peers.map((p) => [p.id, p]));
  const audit = new QueueAuditRecorder(queues, database, logger);
  if (own.generated) audit.record({ kind: 'key.changed', subject: config.nodeId, details: { action: 'generated', public_key_file: own.pubPath } });
  const auditKeys = await loadAuditKeys(config.federation.keyDir, config.nodeId);
  // A chain last signed by another key means this node's key was replaced: record it.
  const lastKeyId = await headKeyId(database.db);
  if (auditKeys.signer && lastKeyId && lastKeyId !== auditKeys.signer.keyId) {
    audit.record({ kind: 'key.changed', eventId: `key-rotated-${lastKeyId}-${auditKeys.signer.keyId}`, subject: config.nodeId, details: { action: 'rotated', from_key_id: lastKeyId, to_key_id: auditKeys.signer.keyId, previous_key_trusted: auditKeys.keys.has(lastKeyId) } });
    if (!auditKeys.keys.has(lastKeyId)) logger.warn({ from: lastKeyId }, 'node key changed; keep the old public key as retired/<id>.<label>.pub in FED_KEY_DIR so older audit entries still verify');
  }
  registerDatabaseCollectors(metrics, database.db, [...peers.keys()]);
  registerQueueCollectors(metrics, queues);

  if (role === 'api' || role === 'all') {
    const subscriber = createRedis(config.redisUrl, 'subscriber', 'acks');
    const acks = config.federation.peers.length > 0 ? new AckTracker(subscriber, config, database, logger) : null;
    if (acks) await acks.start();
    const contact = new Map<string, number>();
    const refusalAudit = throttleRefusals(audit);
    closers.push(async () => refusalAudit.stop());
    const deps: AppDeps = {
      config,
      database,
      logger,
      metrics,
      probes,
      replication: new QueueReplication(config, queues, acks, logger, metrics),
      audit: refusalAudit,
      policy,
      ...(config.adminToken ? { queueBoard: { path: BULL_BOARD_PATH, app: bullBoardApp(queues) } } : {}),
      auditKeys: auditKeys.keys,
      operations: { requestDlqReplay: (peerId) => enqueueDlqReplay(queues, 'operator', peerId) },
      federation: {
        keys,
        nonces: new NonceStore(producer, config.queuePrefix, config.federation.clockSkewMs),
        onPeerContact(peerId) {
          // A peer we were failing to reach just talked to us: it is back, so deliver its
          // backlog, replay its DLQ and pull from it now instead of at the next tick.
          const last = contact.get(peerId) ?? 0;
          if (!peers.has(peerId) || Date.now() - last < 5000) return;
          contact.set(peerId, Date.now());
          void peerWasFailing(database.db, peerId)
            .then(async (failing) => {
              if (!failing) return;
              logger.info({ peer: peerId }, 'peer is back (it contacted us)');
              await Promise.all([enqueuePush(queues, peerId, 'recovered'), enqueueDlqReplay(queues, 'recovered', peerId), enqueueCatchup(queues, peerId, 'recovered')]);
            })
            .catch(() => {});
        },
      },
    };
    const server = await listen(createApp(deps), config.http.host, config.http.port);
    apiUrl = `http://${config.http.host}:${boundPort(server)}`;
    logger.info({ url: apiUrl }, 'api listening');
    closers.push(() => closeServer(server));
    closers.push(async () => (acks ? acks.close() : subscriber.quit()));
  }

  if (role === 'worker' || role === 'all') {
    const publisher = createRedis(config.redisUrl, 'worker', 'publisher');
    const client = new PeerClient({ selfId: config.nodeId, signingKey: keys.signingKey, apiKey: config.apiKey, timeoutMs: config.federation.requestTimeoutMs });
    const workers = await startWorkers({ config, database, logger, metrics, queues, redis: publisher, client, peers, audit, auditSigner: auditKeys.signer, policy });
    if (role === 'worker' && config.workerHttpPort > 0) {
      const ops = await listen(createOpsApp({ config, probes, metrics, logger }), config.http.host, config.workerHttpPort);
      workerUrl = `http://${config.http.host}:${boundPort(ops)}`;
      logger.info({ url: workerUrl }, 'worker metrics/health listening');
      closers.unshift(() => closeServer(ops));
    }
    closers.unshift(() => workers.close(config.shutdownGraceMs));
    closers.push(() => publisher.quit());
  }

  return {
    config,
    apiUrl,
    workerUrl,
    async close() {
      // Order: stop intake (HTTP, workers), then connections.
      for (const c of closers) await c().catch((err) => logger.warn({ err: (err as Error).message }, 'shutdown step failed'));
      await audit.flush();
      await closeQueues(queues);
      await producer.quit().catch(() => producer.disconnect());
      await database.close();
      logger.info('stopped');
    },
  };
}

function listen(app: { fetch: (req: Request) => Response | Promise<Response> }, hostname: string, port: number): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname, port }, () => resolve(server));
    server.once('error', reject);
  });
}

function boundPort(server: ServerType): number {
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : 0;
}

function closeServer(server: ServerType): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Idle keep-alive sockets would hold close() open; in-flight requests still finish.
    (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  });
}

/** CLI entry: `memfed <role|tool> [args]`. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === 'api' || command === 'worker' || command === 'all') {
    let config: Config;
    try {
      config = loadConfig();
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`);
        return 2;
      }
      throw err;
    }
    // Handlers first: a SIGTERM during start-up waits for it to finish, then shuts down cleanly.
    let signalled!: (sig: string) => void;
    const stopRequested = new Promise<string>((resolve) => (signalled = resolve));
    process.once('SIGTERM', () => signalled('SIGTERM'));
    process.once('SIGINT', () => signalled('SIGINT'));
    const node = await startNode(command, config);
    const sig = await stopRequested;
    process.stderr.write(`memfed: ${sig} received, shutting down\n`);
    await node.close();
    return 0;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  return runToolCommand(command, args, (s) => process.stdout.write(`${s}\n`));
}
