import { createApp, createOpsApp } from '../src/api/app.js';
import type { AppDeps, HealthProbe } from '../src/api/deps.js';
import { recordKeyChanges } from '../src/audit/key-changes.js';
import { throttleRefusals } from '../src/audit/throttle.js';
import { registerBreakerCollector, registerDatabaseCollectors } from '../src/collectors.js';
import { configSecrets, describeConfig, describeRedisTarget, type Config } from '../src/config.js';
import { createDatabase } from '../src/db/client.js';
import { assertDriverGuard } from '../src/db/driver-guard.js';
import { prepareDatabase } from '../src/db/migrate.js';
import { PeerClient } from '../src/federation/client.js';
import { PeerDirectory } from '../src/federation/peer-directory.js';
import { seedPeers } from '../src/store/peers.js';
import { KeyRing, ensureOwnKey, loadAuditKeys } from '../src/federation/keys.js';
import { NonceStore } from '../src/federation/nonces.js';
import { refusalBreakerFor } from '../src/federation/refusal-breaker.js';
import { loadPolicy } from '../src/governance.js';
import { createLogger, type Logger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { ServiceUnreachable, waitForService } from '../src/reachability.js';
import { headKeyId } from '../src/store/audit.js';
import { clientTlsOptions, loadTls } from '../src/tls.js';
import { AckTracker } from '../queues/acks.js';
import { QueueAuditRecorder } from '../queues/audit.js';
import { BULL_BOARD_PATH, bullBoardApp } from '../queues/bull-board.js';
import { createRedis, pingRedis } from '../queues/connection.js';
import { enqueueDlqReplay } from '../queues/dlq.js';
import { requestRepair } from '../queues/repair.js';
import { registerQueueCollectors } from '../queues/metrics.js';
import { watchPeerContact } from '../queues/recovery.js';
import { closeQueues, createQueues } from '../queues/registry.js';
import { QueueReplication } from '../queues/replication.js';
import { queueStatusSource } from '../queues/status.js';
import { boundUrl, closeServer, listen } from './http.js';
import { startWorkers } from './runtime.js';

/*
 * The composition root for every role: builds a node's dependencies and starts what the
 * role runs. It lives in workers/ because that is the top of the import graph
 * (src <- queues <- workers): only here may all three be wired together.
 */

export type Role = 'api' | 'worker' | 'all';

export interface RunningNode {
  config: Config;
  /** Base URL of the API (role api/all), with the port actually bound. */
  apiUrl?: string;
  /** Base URL of the worker role's metrics/health server, when it runs. */
  workerUrl?: string;
  /** Graceful shutdown; `why` goes into the log line that starts it. */
  close(why?: string): Promise<void>;
}

/** Starts a node in a role; resolves once it serves. */
export async function startNode(role: Role, config: Config): Promise<RunningNode> {
  assertDriverGuard();
  const logger = createLogger(config.logLevel, { node: config.nodeId, role }, { secrets: configSecrets(config) });
  logger.info({ config: describeConfig(config) }, 'starting memfed');
  try {
    return await startRole(role, config, logger);
  } catch (err) {
    // A JSON line like every other, with the one-line reason (no stack for a service
    // that is not there; a real bug keeps its stack in `err`).
    logger.fatal({ reason: startFailureReason(err), ...(err instanceof ServiceUnreachable ? {} : { err }) }, 'start failed');
    throw err;
  }
}

/** One line for why a start failed, secrets masked by the caller's redaction. */
export const startFailureReason = (err: unknown): string => String((err as Error | undefined)?.message ?? err).split('\n')[0]!;

async function startRole(role: Role, config: Config, logger: Logger): Promise<RunningNode> {
  const metrics = createMetrics({ nodeId: config.nodeId, role, processId: config.processId });
  // Before any connection is opened: an invalid policy must stop the process, not leave
  // it hanging on open pools after the error.
  const policy = await loadPolicy(config.governance);
  if (policy) logger.info({ policy: policy.source }, 'governance policy loaded');
  // Unreadable or mismatched PEM files stop the process here too.
  const tls = await loadTls(config.tls);
  const listenOptions = { limits: config.httpServer, tls };

  // Both services answer (or the start ends in one line naming the one that does not).
  const waiting = (service: string) => (reason: string) => logger.warn({ service, reason, waitMs: config.startupWaitMs }, `waiting for ${service}`);
  await waitForService('Postgres', config.databaseUrl, config.startupWaitMs, () => prepareDatabase(config.databaseUrl), waiting('Postgres'));
  await waitForService('Redis', describeRedisTarget(config.redis), config.startupWaitMs, () => pingRedis(config.redis), waiting('Redis'));
  const database = createDatabase(config.databaseUrl, { max: config.databasePoolMax });
  // FED_PEERS seeds the peers table (rows that do not exist yet); from then on the table,
  // managed with `memfed peers`, is the peer list of every process of the node.
  let directory: PeerDirectory | null = null;
  let keys: KeyRing;
  let own: { generated: boolean; pubPath: string };
  try {
    const seeded = await seedPeers(database.db, config.federation.peers);
    if (seeded.length > 0) logger.info({ peers: seeded }, 'peers seeded from FED_PEERS');
    directory = await PeerDirectory.open(database, logger);
    own = await ensureOwnKey(config.federation.keyDir, config.nodeId);
    keys = await KeyRing.load(config.federation.keyDir, config.nodeId, directory);
  } catch (err) {
    await directory?.close();
    await database.close();
    throw err;
  }
  const peerDirectory = directory;
  if (own.generated) logger.info({ pub: own.pubPath }, "generated this node's Ed25519 key; enrol it on peers by copying the .pub file");
  const plainPeers = [...peerDirectory.active.values()].filter((p) => p.url.startsWith('http://')).map((p) => p.id);
  if (tls && plainPeers.length > 0) logger.warn({ peers: plainPeers }, 'TLS is configured but these peers are reached over plain http://');

  const producer = createRedis(config.redis, 'producer', 'producer');
  const queues = createQueues(producer, config.queuePrefix);
  const probes: HealthProbe[] = [
    { name: 'postgres', check: async () => void (await database.sql`SELECT 1`) },
    { name: 'redis', check: async () => void (await producer.ping()) },
  ];
  const closers: Array<{ step: string; run: () => Promise<unknown> }> = [];
  const audit = new QueueAuditRecorder(queues.audit, database, logger);
  // Used by close() and by a failed start alike: what was opened is closed.
  // Each step is bounded: one that never settles (a request or connection stuck on a
  // service that went away) must not keep the process from exiting.
  const stepBoundMs = config.shutdownGraceMs + 5_000;
  const bounded = async (step: string, run: () => Promise<unknown>) => {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timed out'>((r) => (timer = setTimeout(() => r('timed out'), stepBoundMs).unref()));
    try {
      if ((await Promise.race([run(), timedOut])) === 'timed out') logger.warn({ step, boundMs: stepBoundMs }, 'shutdown step did not finish in time; going on');
    } catch (err) {
      logger.warn({ err, step }, 'shutdown step failed');
    } finally {
      clearTimeout(timer);
    }
  };
  const closeAll = async () => {
    // Order: stop intake (HTTP, workers), then connections.
    for (const c of closers) await bounded(c.step, c.run);
    await bounded('audit', () => audit.close());
    await bounded('queues', () => closeQueues(queues));
    await bounded('producer', () => producer.quit().catch(() => producer.disconnect()));
    await bounded('peer directory', () => peerDirectory.close());
    await bounded('database', () => database.close());
  };
  const running: RunningNode = {
    config,
    close: async (why = 'close requested') => {
      logger.info({ reason: why }, 'shutting down');
      await closeAll();
      logger.info('stopped');
    },
  };
  try {
    const peers = peerDirectory.active;
    const auditKeys = await loadAuditKeys(config.federation.keyDir, config.nodeId);
    recordKeyChanges(audit, logger, { nodeId: config.nodeId, generated: own.generated ? { pubPath: own.pubPath } : null, chainHeadKeyId: await headKeyId(database.db), signer: auditKeys.signer, trustedKeys: auditKeys.keys });
    const reportedPeers = () => peerDirectory.all().filter((p) => p.state !== 'removed').map((p) => p.id);
    registerDatabaseCollectors(metrics, database.db, reportedPeers, () => peerDirectory.ids('paused'));
    registerQueueCollectors(metrics, queues);
    registerBreakerCollector(metrics, refusalBreakerFor(producer, config), reportedPeers);

    if (role === 'api' || role === 'all') {
      const subscriber = createRedis(config.redis, 'subscriber', 'acks');
      // Always: peers may be added at runtime to a node started without any.
      const acks = new AckTracker(subscriber, config, database, logger, peerDirectory.active);
      closers.push({ step: 'acks', run: async () => acks.close() });
      await acks.start();
      const refusalAudit = throttleRefusals(audit, { burst: config.audit.refusalBurst, windowMs: config.audit.refusalWindowMs });
      closers.push({ step: 'refusal audit', run: async () => refusalAudit.stop() });
      const deps: AppDeps = {
        config,
        database,
        logger,
        metrics,
        probes,
        replication: new QueueReplication(config, queues, acks, logger, metrics, peerDirectory),
        audit: refusalAudit,
        policy,
        ...(config.adminToken ? { queueBoard: { path: BULL_BOARD_PATH, app: bullBoardApp(queues, { audit, logger, redis: producer }) } } : {}),
        auditKeys: auditKeys.keys,
        operations: {
          requestDlqReplay: (peerId) => enqueueDlqReplay(queues.dlq, 'operator', peerId),
          requestRepair: (peerId, trigger) => requestRepair(queues.repair, peerDirectory.active, peerId, trigger),
          queueStatus: queueStatusSource(queues),
        },
        federation: {
          keys,
          nonces: new NonceStore(producer, config.queuePrefix, config.federation.clockSkewMs, config.federation.bareNonces),
          onPeerContact: watchPeerContact({ db: database.db, queues, logger, metrics }, peers),
        },
      };
      const server = await listen(createApp(deps), config.http.host, config.http.port, listenOptions);
      running.apiUrl = boundUrl(server, config.http.host);
      logger.info({ url: running.apiUrl }, 'api listening');
      closers.unshift({ step: 'api server', run: () => closeServer(server) });
    }

    if (role === 'worker' || role === 'all') {
      // The port first: a worker that cannot serve its metrics must not consume jobs.
      if (role === 'worker' && config.workerHttpPort > 0) {
        const ops = await listen(createOpsApp({ config, probes, metrics, logger }), config.http.host, config.workerHttpPort, listenOptions);
        running.workerUrl = boundUrl(ops, config.http.host);
        logger.info({ url: running.workerUrl }, 'worker metrics/health listening');
        closers.unshift({ step: 'worker ops server', run: () => closeServer(ops) });
      }
      const publisher = createRedis(config.redis, 'worker', 'publisher');
      const client = new PeerClient({ selfId: config.nodeId, signingKey: keys.signingKey, apiKey: config.apiKey, timeoutMs: config.federation.requestTimeoutMs, tls: clientTlsOptions(tls) });
      closers.push({ step: 'publisher', run: () => publisher.quit() });
      closers.push({ step: 'peer client', run: () => client.close() });
      const workers = await startWorkers({ config, database, logger, metrics, queues, redis: publisher, client, peers, peerDirectory, audit, auditSigner: auditKeys.signer, policy });
      closers.unshift({ step: 'workers', run: () => workers.close(config.shutdownGraceMs) });
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  return running;
}
