import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { loadConfig } from '../../src/config.js';
import { PeerClient } from '../../src/federation/client.js';
import { KeyRing, ensureOwnKey } from '../../src/federation/keys.js';
import { createMetrics } from '../../src/metrics.js';
import { createRedis } from '../../queues/connection.js';
import { closeQueues, createQueues } from '../../queues/registry.js';
import type { WorkerContext } from '../../workers/context.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { REDIS_URL } from './env.js';
import { dropPrefix, uniquePrefix } from './redis.js';

/** A logger whose JSON lines are kept in memory (assert what was logged). */
export function capturingLogger(): { logger: Logger; lines: () => Array<Record<string, any>> } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines: () => lines.map((l) => JSON.parse(l)) };
}

/**
 * Everything a processor needs, on a fresh database and queue prefix, without a whole
 * node: processors and the queue factory tested on their own, through real Redis.
 */
export async function workerContext(opts: { nodeId: string; keyDir: string; peers?: Array<{ id: string; url: string }>; env?: Record<string, string> }) {
  const db: TestDatabase = await createTestDatabase();
  const prefix = uniquePrefix();
  await ensureOwnKey(opts.keyDir, opts.nodeId);
  const peers = opts.peers ?? [];
  const config = loadConfig({
    NODE_ID: opts.nodeId,
    DATABASE_URL: db.url,
    REDIS_URL,
    QUEUE_PREFIX: prefix,
    FED_KEY_DIR: opts.keyDir,
    FED_PEERS: peers.map((p) => `${p.id}=${p.url}`).join(','),
    FED_REQUEST_TIMEOUT_MS: '3000',
    LOG_LEVEL: 'silent',
    ...opts.env,
  });
  const redis = createRedis(REDIS_URL, 'worker', 'test-ctx');
  const queues = createQueues(redis, prefix);
  const keys = await KeyRing.load(opts.keyDir, opts.nodeId);
  const log = capturingLogger();
  const ctx: WorkerContext = {
    config,
    database: db.database,
    logger: log.logger,
    metrics: createMetrics({ nodeId: opts.nodeId, role: 'worker', defaultMetrics: false }),
    queues,
    redis,
    client: new PeerClient({ selfId: opts.nodeId, signingKey: keys.signingKey, apiKey: '', timeoutMs: 3000 }),
    peers: new Map(peers.map((p) => [p.id, p])),
    audit: { record() {} },
    auditSigner: null,
    policy: null,
  };
  return {
    ctx,
    prefix,
    logLines: log.lines,
    async close() {
      await closeQueues(queues);
      await redis.quit();
      await db.drop();
      await dropPrefix(prefix);
    },
  };
}
