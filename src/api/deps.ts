import type { AuditRecorder } from '../audit/events.js';
import type { KeyObject } from 'node:crypto';
import type { Hono } from 'hono';
import type { Config } from '../config.js';
import type { Policy } from '../governance.js';
import type { Database } from '../db/client.js';
import type { KeyRing } from '../federation/keys.js';
import type { NonceStore } from '../federation/nonces.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { FeedPosition } from '../store/feed.js';
import type { QueueStatusSource } from '../status/report.js';

/** Outcome of waiting for a write quorum (docs/wire.md, Quorum writes). */
export type QuorumOutcome =
  | { met: true; acks: number }
  | { met: false; got: number; needed: number; reason: 'unreachable' | 'timeout' | 'refused' };


/**
 * What the API needs from replication, implemented in queues/ (the API never imports
 * BullMQ): called after every local commit; enqueues delivery and waits for the quorum.
 */
export interface Replication {
  afterCommit(position: FeedPosition | null): Promise<QuorumOutcome>;
}

export interface HealthProbe {
  name: string;
  check(): Promise<void>;
}

/** Inbound federation: who is enrolled, which nonces were seen, who just got in touch. */
export interface FederationDeps {
  keys: KeyRing;
  nonces: NonceStore;
  /** A peer made a verified request: it is up, so deliver to it now (docs/invariants.md, point 8). */
  onPeerContact(peerId: string): void;
}

export interface AppDeps {
  config: Config;
  database: Database;
  logger: Logger;
  metrics: Metrics;
  replication: Replication;
  /** Readiness checks (Postgres, Redis); each must settle quickly. */
  probes: HealthProbe[];
  federation: FederationDeps;
  audit: AuditRecorder;
  /** Governance policy (null = none): refusals are 403 + an audit event. */
  policy: Policy | null;
  /** Keys the audit chain verifies against (this node's public key). */
  auditKeys: Map<string, KeyObject>;
  /** Bull Board (built in queues/), mounted at /admin/queues behind ADMIN_TOKEN. */
  queueBoard?: { path: string; app: Hono };
  /** Queue-backed operator actions and reads (implemented in queues/). */
  operations: {
    requestDlqReplay(peerId?: string): Promise<void>;
    /** A repair run now against one peer (null: every active memfed peer). */
    requestRepair(peerId: string | null, trigger: 'operator' | 'restored'): Promise<void>;
    queueStatus: QueueStatusSource;
  };
}

/**
 * Whether the node federates (a write answers `quorum_acks`): any peer not removed, by the
 * runtime peer list when the node has one, else by FED_PEERS.
 */
export function hasPeers({ config, federation }: Pick<AppDeps, 'config' | 'federation'>): boolean {
  const dir = federation.keys.directory;
  return dir ? dir.knownCount() > 0 : config.federation.peers.length > 0;
}
