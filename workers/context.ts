import type { AuditSigner } from '../src/audit/chain.js';
import type { AuditRecorder } from '../src/audit/events.js';
import type { Config, PeerConfig } from '../src/config.js';
import type { Database } from '../src/db/client.js';
import type { Policy } from '../src/governance.js';
import type { PeerClient } from '../src/federation/client.js';
import type { PeerDirectory } from '../src/federation/peer-directory.js';
import type { Logger } from '../src/logger.js';
import type { Metrics } from '../src/metrics.js';
import type { RedisClient } from '../queues/connection.js';
import type { Queues } from '../queues/registry.js';

/** What every processor may use; built once per worker process. */
export interface WorkerContext {
  config: Config;
  database: Database;
  logger: Logger;
  metrics: Metrics;
  queues: Queues;
  /** Plain (non-blocking) Redis connection for publishing acks. */
  redis: RedisClient;
  client: PeerClient;
  /** The active peers, read live (the runtime peer list's map, updated in place). */
  peers: ReadonlyMap<string, PeerConfig>;
  /** The runtime peer list, to follow its changes (absent: the peers are fixed). */
  peerDirectory?: PeerDirectory;
  audit: AuditRecorder;
  auditSigner: AuditSigner | null;
  policy: Policy | null;
}
