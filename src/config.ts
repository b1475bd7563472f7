import os from 'node:os';
import { z } from 'zod';
import { PEER_ID, parsePeerList, type PeerSpec } from './federation/peers.js';
import { MEMORY_MAX_BYTES_DEFAULT } from './memory/size.js';
import { QUEUE_NAMES, isQueueName, type QueueName } from './queue-names.js';
import { redactText, redactUrl, secretsOf } from './redact.js';

/**
 * A federation peer as the federation code takes it: id, base URL and flavour (absent =
 * `memfed`, so a peer built by hand needs none). Config always fills it (PeerSpec).
 */
export type PeerConfig = Omit<PeerSpec, 'flavour'> & { flavour?: PeerSpec['flavour'] };

// Node and peer ids also name key files (<id>.pub), so no '/'.
const AGENT_ID = PEER_ID;

/**
 * Agent ids upstream reserves for its internal principals (upstream src/validate.rs:
 * RESERVED_AGENT_IDS, refused by validate_agent_id on every wire entry point, x-peer-id and
 * sender_agent_id included), so an ai-memory peer refuses every request from a node so named.
 */
export const RESERVED_NODE_IDS: readonly string[] = ['daemon', 'system', 'federation-catchup', 'subscription-dispatch', 'ai:http-internal', 'ai:migrate', 'export-internal', 'governance-internal'];

const bool = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      const s = v.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(s)) return true;
      if (['0', 'false', 'no', 'off'].includes(s)) return false;
      ctx.addIssue({ code: 'custom', message: `expected true/false, got "${v}"` });
      return z.NEVER;
    });

const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `expected an integer in [${min}, ${max}], got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

const str = (fallback: string) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === '' ? fallback : v));

const oneOf = <T extends string>(fallback: T, values: readonly T[]) =>
  z
    .string()
    .optional()
    .transform((v, ctx): T => {
      if (v === undefined || v.trim() === '') return fallback;
      const s = v.trim();
      if ((values as readonly string[]).includes(s)) return s as T;
      ctx.addIssue({ code: 'custom', message: `expected one of ${values.join(', ')}, got "${v}"` });
      return z.NEVER;
    });

const url = (fallback: string, protocols: string[]) =>
  str(fallback).superRefine((v, ctx) => {
    try {
      const u = new URL(v);
      if (!protocols.includes(u.protocol)) ctx.addIssue({ code: 'custom', message: `expected ${protocols.join(' or ')} URL` });
    } catch {
      ctx.addIssue({ code: 'custom', message: `not a URL: "${redactUrl(v)}"` });
    }
  });

/** `id=url[;flavour=...],...` -> PeerConfig[] (src/federation/peers.ts); a peer equal to NODE_ID is a config error. */
const peers = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const { peers: out, problems } = parsePeerList(v);
    for (const message of problems) ctx.addIssue({ code: 'custom', message });
    return out;
  });

/** `host:port,...` (IPv6 as `[::1]:7001`) -> HostPort[]; empty = unset. */
const hostPorts = z
  .string()
  .optional()
  .transform((v, ctx): HostPort[] => {
    const out: HostPort[] = [];
    for (const entry of (v ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
      const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_.-]+)):(\d{1,5})$/.exec(entry);
      const port = Number(m?.[3]);
      if (!m || port < 1 || port > 65535) ctx.addIssue({ code: 'custom', message: `bad entry "${entry}": expected host:port` });
      else out.push({ host: m[1] ?? m[2]!, port });
    }
    return out;
  });

const QUEUE_PREFIX_SHAPE = /^[A-Za-z0-9_\-.]*(\{[A-Za-z0-9_\-.:]+\})?[A-Za-z0-9_\-.]*$/;

const schema = z.object({
  NODE_ID: str(`host:${os.hostname()}`).superRefine((v, ctx) => {
    if (!AGENT_ID.test(v)) ctx.addIssue({ code: 'custom', message: 'expected 1-128 chars of [A-Za-z0-9_-:@.] (it names the key files)' });
    else if (RESERVED_NODE_IDS.includes(v)) ctx.addIssue({ code: 'custom', message: `"${v}" is an agent id ai-memory reserves for internal use (its peers refuse it); choose another NODE_ID` });
    // upstream src/validate.rs: validate_agent_id_shape refuses '..' (path-traversal guard).
    else if (v.includes('..')) ctx.addIssue({ code: 'custom', message: 'may not contain ".." (ai-memory peers refuse such agent ids)' });
  }),
  HTTP_HOST: str('127.0.0.1'),
  HTTP_PORT: int(9077, 0, 65535),
  WORKER_HTTP_PORT: int(9177, 0, 65535),
  DATABASE_URL: url('postgres://postgres@127.0.0.1:5432/memfed', ['postgres:', 'postgresql:']),
  DATABASE_POOL_MAX: int(10, 1, 200),
  // Group commit of single-memory creates: rows per shared transaction, batches at once.
  WRITE_BATCH_MAX: int(256, 1, 1000),
  WRITE_BATCH_IN_FLIGHT: int(1, 1, 64),
  REDIS_URL: url('redis://127.0.0.1:6379', ['redis:', 'rediss:']),
  // Redis Cluster seeds or a Sentinel set instead of REDIS_URL (docs/operations.md, "Scaling out").
  REDIS_CLUSTER_NODES: hostPorts,
  REDIS_SENTINELS: hostPorts,
  REDIS_SENTINEL_NAME: str(''),
  // At most one hash tag ({...}): on a cluster every queue's keys must share a slot.
  QUEUE_PREFIX: str('memfed').refine((v) => v.length <= 64 && QUEUE_PREFIX_SHAPE.test(v), 'expected 1-64 chars of [A-Za-z0-9_-.], with at most one hash tag {...} (e.g. {memfed})'),
  // The metrics' `process` label; empty: `<role>-<hostname>-<pid>` (src/metrics.ts).
  PROCESS_ID: str('').refine((v) => /^[A-Za-z0-9_\-.:]{0,64}$/.test(v), 'expected 0-64 chars of [A-Za-z0-9_-.:]'),
  FED_PEERS: peers,
  FED_QUORUM_W: int(1, 1, 64),
  FED_ACK_TIMEOUT_MS: int(2000, 1, 600_000),
  FED_KEY_DIR: str('./data/keys'),
  FED_REQUIRE_SIG: bool(true),
  FED_CLOCK_SKEW_MS: int(300_000, 1_000, 3_600_000),
  // Bare (time-less) upstream nonces: remembered per peer for this long, at most this many.
  FED_BARE_NONCE_RETENTION_MS: int(7 * 24 * 3600_000, 3600_000, 90 * 24 * 3600_000),
  FED_BARE_NONCE_MAX_PER_PEER: int(100_000, 1_000, 10_000_000),
  FED_REQUEST_TIMEOUT_MS: int(10_000, 100, 120_000),
  JOB_LOCK_MS: int(30_000, 5_000, 600_000),
  API_KEY: str(''),
  ADMIN_TOKEN: str(''),
  PUSH_CONCURRENCY: int(8, 1, 256),
  DLQ_CONCURRENCY: int(1, 1, 64),
  CATCHUP_CONCURRENCY: int(2, 1, 64),
  PUSH_BATCH_MAX: int(500, 1, 1000),
  PUSH_BATCH_MAX_BYTES: int(8 * 1024 * 1024, 64 * 1024, 32 * 1024 * 1024),
  // Refusal breaker (src/federation/refusal-breaker.ts): consecutive batches refused whole
  // that open it (0 = off), and how often an open breaker tries a normal split attempt.
  PUSH_REFUSAL_BREAKER_BATCHES: int(3, 0, 1000),
  PUSH_REFUSAL_BREAKER_PROBE_MS: int(300_000, 1_000, 86_400_000),
  // Rows received from a peer flow on to the other peers in pushes (false: only this node's
  // own writes are pushed; the others get relayed rows by their catch-up pulls).
  PUSH_RELAY: bool(true),
  RECONCILE_INTERVAL_MS: int(5_000, 100, 3_600_000),
  CATCHUP_INTERVAL_MS: int(30_000, 100, 86_400_000),
  DLQ_REPLAY_INTERVAL_MS: int(30_000, 100, 86_400_000),
  DLQ_MAX_REPLAY_ATTEMPTS: int(100, 1, 1_000_000),
  DLQ_REPLAY_MAX_BATCH: int(2048, 64, 100_000),
  DLQ_RUN_BUDGET_MS: int(20_000, 0, 600_000),
  // Tier TTLs of a new memory without ttl_secs/expires_at (upstream [ttl] short_ttl_secs, mid_ttl_secs).
  SHORT_TTL_SECS: int(6 * 3600, 1, 315_360_000),
  MID_TTL_SECS: int(7 * 86400, 1, 315_360_000),
  // Tier expiry sweep and tombstone GC (queues/expiry.ts, docs/operations.md "Tier expiry", "Tombstone GC").
  EXPIRY_SWEEP_INTERVAL_MS: int(60_000, 100, 86_400_000),
  TOMBSTONE_GC_INTERVAL_MS: int(3_600_000, 100, 86_400_000),
  EXPIRY_BATCH_MAX: int(1000, 1, 100_000),
  EXPIRY_RUN_BUDGET_MS: int(20_000, 0, 600_000),
  // Tombstones are kept at least this long; must be longer than FEED_RETENTION_MS.
  TOMBSTONE_GRACE_MS: int(30 * 86_400_000, 1_000, 3650 * 86_400_000),
  // Change-feed retention (docs/operations.md, "Change-feed retention and snapshot bootstrap").
  FEED_RETENTION_MS: int(7 * 24 * 3600_000, 1_000, 3650 * 24 * 3600_000),
  // Beyond this age an entry is pruned even if a peer has not received it (0: 4 x FEED_RETENTION_MS).
  FEED_MAX_LAG_MS: int(0, 0, 3650 * 24 * 3600_000),
  // A snapshot nobody pages for this long stops holding the feed (its reader starts again).
  FEED_SNAPSHOT_TTL_MS: int(3600_000, 1_000, 7 * 24 * 3600_000),
  RETENTION_INTERVAL_MS: int(300_000, 100, 86_400_000),
  // Feed entries deleted per (short) transaction, and at most this many batches per run.
  RETENTION_BATCH: int(5_000, 1, 100_000),
  RETENTION_MAX_BATCHES: int(200, 1, 100_000),
  // Anti-entropy repair against each active memfed peer (src/repair/): how often, and how
  // long one run may take before it stops (the next run starts over; nothing is lost).
  REPAIR_INTERVAL_MS: int(6 * 3600_000, 1_000, 30 * 86_400_000),
  REPAIR_RUN_BUDGET_MS: int(300_000, 1_000, 3_600_000),
  REPAIR_CONCURRENCY: int(1, 1, 16),
  WORKER_QUEUES: str('push,dlq,catchup,audit,expiry,retention,repair').superRefine((v, ctx) => {
    for (const q of v.split(',').map((x) => x.trim()).filter(Boolean)) {
      if (!isQueueName(q)) ctx.addIssue({ code: 'custom', message: `unknown queue "${q}" (known: ${QUEUE_NAMES.join(', ')})` });
    }
  }),
  SHUTDOWN_GRACE_MS: int(10_000, 0, 600_000),
  STARTUP_WAIT_MS: int(10_000, 0, 600_000),
  MAX_BODY_BYTES: int(512 * 1024, 16 * 1024, 64 * 1024 * 1024),
  MAX_BATCH_BODY_BYTES: int(48 * 1024 * 1024, 64 * 1024, 256 * 1024 * 1024),
  // One memory's serialized JSON (docs/security.md). At most 1 MiB: one memory must fit an
  // ai-memory push body (2 MiB) and a since page (4 MiB) with room to spare.
  MEMORY_MAX_BYTES: int(MEMORY_MAX_BYTES_DEFAULT, 16 * 1024, 1024 * 1024),
  // Batch-sized bodies (pushes, bulk imports) read at once per process; more get 503.
  MAX_CONCURRENT_BATCH_READS: int(4, 1, 256),
  AUDIT_LEVEL: oneOf('security', ['security', 'all'] as const),
  AUDIT_CHECKPOINT_EVERY: int(1000, 1, 10_000_000),
  AUDIT_CHECKPOINT_INTERVAL_MS: int(60_000, 100, 86_400_000),
  // Federation refusals per tag recorded one by one per window; the rest in one summary.
  AUDIT_REFUSAL_BURST: int(20, 1, 10_000),
  AUDIT_REFUSAL_WINDOW_MS: int(60_000, 100, 3_600_000),
  GOVERNANCE_FILE: str(''),
  GOVERNANCE_POLICY: str(''),
  // Fault injection for the test campaign only (docs/invariants.md, Testing tiers): never set in production.
  MEMFED_FAULT_CRASH_AFTER_COMMIT: bool(false),
  // HTTP server limits (workers/http.ts) and TLS (src/tls.ts); docs/operations.md, "TLS".
  HTTP_REQUEST_TIMEOUT_MS: int(30_000, 1_000, 600_000),
  HTTP_HEADERS_TIMEOUT_MS: int(20_000, 1_000, 600_000),
  HTTP_KEEPALIVE_TIMEOUT_MS: int(5_000, 1_000, 600_000),
  HTTP_MAX_CONNECTIONS: int(1024, 1, 1_000_000),
  TLS_CERT_FILE: str(''),
  TLS_KEY_FILE: str(''),
  TLS_CA_FILE: str(''),
  FED_REQUIRE_CLIENT_CERT: bool(false),
  LOG_LEVEL: oneOf('info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
});

/** Every environment variable loadConfig reads (test/config.test.ts covers each one). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(schema.shape);

type Raw = z.infer<typeof schema>;

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Where the node's Redis is: one server (REDIS_URL), a Redis Cluster reached through its
 * seed nodes (REDIS_CLUSTER_NODES), or a primary found through Sentinel (REDIS_SENTINELS +
 * REDIS_SENTINEL_NAME). queues/connection.ts makes every connection for any of them.
 */
export type RedisTarget = { kind: 'single'; url: string } | { kind: 'cluster'; nodes: HostPort[] } | { kind: 'sentinel'; sentinels: HostPort[]; name: string };

/** The target in one line for logs and errors (no secrets: cluster and sentinel carry none). */
export function describeRedisTarget(t: RedisTarget): string {
  const list = (hs: HostPort[]) => hs.map((h) => (h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`)).join(',');
  if (t.kind === 'cluster') return `cluster ${list(t.nodes)}`;
  if (t.kind === 'sentinel') return `sentinel ${t.name} via ${list(t.sentinels)}`;
  return redactUrl(t.url);
}

/** The hash tag of a prefix (`{memfed}` -> `memfed`), or null. */
export const hashTagOf = (prefix: string): string | null => /\{([^}]+)\}/.exec(prefix)?.[1] ?? null;

export interface Config {
  nodeId: string;
  http: { host: string; port: number };
  workerHttpPort: number;
  databaseUrl: string;
  databasePoolMax: number;
  /** Group commit of single-memory creates (src/store/group-commit.ts). */
  writeBatch: { max: number; inFlight: number };
  redisUrl: string;
  /** The Redis every connection goes to (REDIS_URL unless cluster or sentinel settings replace it). */
  redis: RedisTarget;
  queuePrefix: string;
  /** The metrics' `process` label ('' = derived from role, host name and pid). */
  processId: string;
  federation: {
    peers: PeerSpec[];
    /** Acks needed including the local commit, clamped to [1, 1 + peers]. */
    quorumW: number;
    /** FED_QUORUM_W as set: peers added at runtime raise the clamp of `quorumW` (queues/replication.ts). */
    quorumWanted: number;
    ackTimeoutMs: number;
    keyDir: string;
    requireSig: boolean;
    clockSkewMs: number;
    requestTimeoutMs: number;
    bareNonces: { retentionMs: number; maxPerPeer: number };
  };
  apiKey: string;
  adminToken: string;
  concurrency: { push: number; dlq: number; catchup: number; repair: number };
  push: { batchMax: number; batchMaxBytes: number; relay: boolean; reconcileIntervalMs: number; refusalBreaker: { batches: number; probeMs: number } };
  catchup: { intervalMs: number };
  /** Change-feed retention and snapshots (src/store/retention.ts). */
  retention: { feedRetentionMs: number; maxLagMs: number; snapshotTtlMs: number; intervalMs: number; batch: number; maxBatches: number };
  dlq: { replayIntervalMs: number; maxReplayAttempts: number; replayMaxBatch: number; runBudgetMs: number };
  /** Default TTL of a new memory per tier, in seconds (null: never expires). */
  tierTtlSecs: { short: number | null; mid: number | null; long: number | null };
  expiry: { sweepIntervalMs: number; tombstoneGcIntervalMs: number; batchMax: number; runBudgetMs: number; tombstoneGraceMs: number };
  repair: { intervalMs: number; runBudgetMs: number; tombstoneGraceMs: number };
  workerQueues: QueueName[];
  shutdownGraceMs: number;
  /** How long a starting role waits for Postgres and Redis to answer before it gives up (exit 1). */
  startupWaitMs: number;
  /** BullMQ lock duration; a dead worker's jobs are re-run after about twice this. */
  jobLockMs: number;
  limits: { maxBodyBytes: number; maxBatchBodyBytes: number; memoryMaxBytes: number; concurrentBatchReads: number };
  audit: { level: 'security' | 'all'; checkpointEvery: number; checkpointIntervalMs: number; refusalBurst: number; refusalWindowMs: number };
  /** Governance policy source: a JSON file path or inline JSON (both empty = no policy). */
  governance: { file: string; inline: string };
  /** Test-only fault hooks (MEMFED_FAULT_*). */
  faults: { crashAfterCommit: boolean };
  /** Limits of every HTTP listener (slow clients: docs/operations.md). */
  httpServer: { requestTimeoutMs: number; headersTimeoutMs: number; keepAliveTimeoutMs: number; maxConnections: number };
  /** PEM file paths ('' = unset); requireClientCert guards /api/v1/sync/*. */
  tls: { certFile: string; keyFile: string; caFile: string; requireClientCert: boolean };
  logLevel: Raw['LOG_LEVEL'];
}

export class ConfigError extends Error {
  constructor(public readonly problems: string[], secrets: readonly string[] = []) {
    // A problem may quote a value: no URL password or shared secret leaves in it.
    problems = problems.map((p) => redactText(p, secrets));
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates configuration; throws ConfigError listing every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = schema.safeParse(env);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  // Cross-variable check on the raw values too, so one run lists every problem.
  const selfId = env.NODE_ID || `host:${os.hostname()}`;
  if ((env.FED_PEERS ?? '').split(',').some((p) => p.split('=')[0]?.trim() === selfId)) problems.push('FED_PEERS: lists this node itself (NODE_ID)');
  // A request must end before its job's lock does, or a slow peer makes the job stall.
  const timeout = Number(env.FED_REQUEST_TIMEOUT_MS || 10_000);
  const lock = Number(env.JOB_LOCK_MS || 30_000);
  if (Number.isFinite(timeout) && Number.isFinite(lock) && timeout >= lock) problems.push(`FED_REQUEST_TIMEOUT_MS: must be below JOB_LOCK_MS (${lock})`);
  // A tombstone must outlive the feed entry that delivers it (and a peer's snapshot of it).
  const grace = Number(env.TOMBSTONE_GRACE_MS || 30 * 86_400_000);
  const retention = Number(env.FEED_RETENTION_MS || 7 * 24 * 3600_000);
  if (Number.isFinite(grace) && Number.isFinite(retention) && grace <= retention) {
    problems.push(env.TOMBSTONE_GRACE_MS ? `TOMBSTONE_GRACE_MS: must be longer than FEED_RETENTION_MS (${retention})` : `FEED_RETENTION_MS: must be shorter than TOMBSTONE_GRACE_MS (${grace})`);
  }
  // The lag bound is a bound beyond the window: a peer within the window always holds the feed.
  const maxLag = Number(env.FEED_MAX_LAG_MS || 0);
  if (Number.isInteger(retention) && Number.isInteger(maxLag) && maxLag !== 0 && maxLag < retention) problems.push(`FEED_MAX_LAG_MS: must be at least FEED_RETENTION_MS (${retention}), or 0 for 4 x FEED_RETENTION_MS`);
  problems.push(...transportProblems(env));
  problems.push(...redisTargetProblems(env));
  if (!parsed.success || problems.length) throw new ConfigError(problems, secretsOf(env));
  const r = parsed.data;
  const workerQueues = r.WORKER_QUEUES.split(',').map((q) => q.trim()).filter(isQueueName);
  const n = 1 + r.FED_PEERS.length;
  return {
    nodeId: r.NODE_ID,
    http: { host: r.HTTP_HOST, port: r.HTTP_PORT },
    workerHttpPort: r.WORKER_HTTP_PORT,
    databaseUrl: r.DATABASE_URL,
    databasePoolMax: r.DATABASE_POOL_MAX,
    writeBatch: { max: r.WRITE_BATCH_MAX, inFlight: r.WRITE_BATCH_IN_FLIGHT },
    redisUrl: r.REDIS_URL,
    redis:
      r.REDIS_CLUSTER_NODES.length > 0
        ? { kind: 'cluster', nodes: r.REDIS_CLUSTER_NODES }
        : r.REDIS_SENTINELS.length > 0
          ? { kind: 'sentinel', sentinels: r.REDIS_SENTINELS, name: r.REDIS_SENTINEL_NAME }
          : { kind: 'single', url: r.REDIS_URL },
    queuePrefix: r.QUEUE_PREFIX,
    processId: r.PROCESS_ID,
    federation: {
      peers: r.FED_PEERS,
      quorumW: Math.min(Math.max(r.FED_QUORUM_W, 1), n),
      quorumWanted: r.FED_QUORUM_W,
      ackTimeoutMs: r.FED_ACK_TIMEOUT_MS,
      keyDir: r.FED_KEY_DIR,
      requireSig: r.FED_REQUIRE_SIG,
      clockSkewMs: r.FED_CLOCK_SKEW_MS,
      requestTimeoutMs: r.FED_REQUEST_TIMEOUT_MS,
      bareNonces: { retentionMs: r.FED_BARE_NONCE_RETENTION_MS, maxPerPeer: r.FED_BARE_NONCE_MAX_PER_PEER },
    },
    apiKey: r.API_KEY,
    adminToken: r.ADMIN_TOKEN,
    concurrency: { push: r.PUSH_CONCURRENCY, dlq: r.DLQ_CONCURRENCY, catchup: r.CATCHUP_CONCURRENCY, repair: r.REPAIR_CONCURRENCY },
    push: {
      batchMax: r.PUSH_BATCH_MAX,
      batchMaxBytes: r.PUSH_BATCH_MAX_BYTES,
      relay: r.PUSH_RELAY,
      reconcileIntervalMs: r.RECONCILE_INTERVAL_MS,
      refusalBreaker: { batches: r.PUSH_REFUSAL_BREAKER_BATCHES, probeMs: r.PUSH_REFUSAL_BREAKER_PROBE_MS },
    },
    catchup: { intervalMs: r.CATCHUP_INTERVAL_MS },
    retention: {
      feedRetentionMs: r.FEED_RETENTION_MS,
      maxLagMs: r.FEED_MAX_LAG_MS === 0 ? 4 * r.FEED_RETENTION_MS : r.FEED_MAX_LAG_MS,
      snapshotTtlMs: r.FEED_SNAPSHOT_TTL_MS,
      intervalMs: r.RETENTION_INTERVAL_MS,
      batch: r.RETENTION_BATCH,
      maxBatches: r.RETENTION_MAX_BATCHES,
    },
    dlq: { replayIntervalMs: r.DLQ_REPLAY_INTERVAL_MS, maxReplayAttempts: r.DLQ_MAX_REPLAY_ATTEMPTS, replayMaxBatch: r.DLQ_REPLAY_MAX_BATCH, runBudgetMs: r.DLQ_RUN_BUDGET_MS },
    tierTtlSecs: { short: r.SHORT_TTL_SECS, mid: r.MID_TTL_SECS, long: null },
    expiry: { sweepIntervalMs: r.EXPIRY_SWEEP_INTERVAL_MS, tombstoneGcIntervalMs: r.TOMBSTONE_GC_INTERVAL_MS, batchMax: r.EXPIRY_BATCH_MAX, runBudgetMs: r.EXPIRY_RUN_BUDGET_MS, tombstoneGraceMs: r.TOMBSTONE_GRACE_MS },
    repair: { intervalMs: r.REPAIR_INTERVAL_MS, runBudgetMs: r.REPAIR_RUN_BUDGET_MS, tombstoneGraceMs: r.TOMBSTONE_GRACE_MS },
    workerQueues,
    shutdownGraceMs: r.SHUTDOWN_GRACE_MS,
    startupWaitMs: r.STARTUP_WAIT_MS,
    jobLockMs: r.JOB_LOCK_MS,
    limits: { maxBodyBytes: r.MAX_BODY_BYTES, maxBatchBodyBytes: r.MAX_BATCH_BODY_BYTES, memoryMaxBytes: r.MEMORY_MAX_BYTES, concurrentBatchReads: r.MAX_CONCURRENT_BATCH_READS },
    audit: { level: r.AUDIT_LEVEL, checkpointEvery: r.AUDIT_CHECKPOINT_EVERY, checkpointIntervalMs: r.AUDIT_CHECKPOINT_INTERVAL_MS, refusalBurst: r.AUDIT_REFUSAL_BURST, refusalWindowMs: r.AUDIT_REFUSAL_WINDOW_MS },
    governance: { file: r.GOVERNANCE_FILE, inline: r.GOVERNANCE_POLICY },
    faults: { crashAfterCommit: r.MEMFED_FAULT_CRASH_AFTER_COMMIT },
    httpServer: { requestTimeoutMs: r.HTTP_REQUEST_TIMEOUT_MS, headersTimeoutMs: env.HTTP_HEADERS_TIMEOUT_MS ? r.HTTP_HEADERS_TIMEOUT_MS : Math.min(r.HTTP_HEADERS_TIMEOUT_MS, r.HTTP_REQUEST_TIMEOUT_MS), keepAliveTimeoutMs: r.HTTP_KEEPALIVE_TIMEOUT_MS, maxConnections: r.HTTP_MAX_CONNECTIONS },
    tls: { certFile: r.TLS_CERT_FILE, keyFile: r.TLS_KEY_FILE, caFile: r.TLS_CA_FILE, requireClientCert: r.FED_REQUIRE_CLIENT_CERT },
    logLevel: r.LOG_LEVEL,
  };
}

/** Cross-variable rules of the HTTP and TLS block. */
function transportProblems(env: Record<string, string | undefined>): string[] {
  const out: string[] = [];
  // Node refuses a headers timeout above the request timeout.
  // Unset, it follows a lower request timeout (loadConfig), so only an explicit value can conflict.
  const headers = Number(env.HTTP_HEADERS_TIMEOUT_MS || 0);
  const request = Number(env.HTTP_REQUEST_TIMEOUT_MS || 30_000);
  if (headers > request) out.push(`HTTP_HEADERS_TIMEOUT_MS: must not exceed HTTP_REQUEST_TIMEOUT_MS (${request})`);
  if (env.TLS_CERT_FILE && !env.TLS_KEY_FILE) out.push('TLS_CERT_FILE: needs TLS_KEY_FILE too (set both or neither)');
  if (env.TLS_KEY_FILE && !env.TLS_CERT_FILE) out.push('TLS_KEY_FILE: needs TLS_CERT_FILE too (set both or neither)');
  if (['1', 'true', 'yes', 'on'].includes((env.FED_REQUIRE_CLIENT_CERT ?? '').trim().toLowerCase()) && (!env.TLS_CERT_FILE || !env.TLS_CA_FILE)) {
    out.push('FED_REQUIRE_CLIENT_CERT: needs TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE (client certificates are checked against the CA)');
  }
  return out;
}

/** Cross-variable rules of the Redis block: one topology, and a cluster-safe prefix on a cluster. */
function redisTargetProblems(env: Record<string, string | undefined>): string[] {
  const out: string[] = [];
  const set = (name: string) => (env[name] ?? '').trim() !== '';
  // A list that does not parse is reported by the schema; its dependent rules wait for a good one.
  const valid = (name: string) => set(name) && hostPorts.safeParse(env[name]).success;
  if (set('REDIS_CLUSTER_NODES') && set('REDIS_SENTINELS')) out.push('REDIS_CLUSTER_NODES: set together with REDIS_SENTINELS (choose one topology)');
  if (valid('REDIS_SENTINELS') && !set('REDIS_SENTINEL_NAME')) out.push('REDIS_SENTINELS: needs REDIS_SENTINEL_NAME (the master name the sentinels monitor)');
  if (set('REDIS_SENTINEL_NAME') && !set('REDIS_SENTINELS')) out.push('REDIS_SENTINEL_NAME: needs REDIS_SENTINELS (the sentinel addresses)');
  // BullMQ's scripts touch many keys of a queue at once: on a cluster they must share a
  // slot, which only a hash tag in the prefix guarantees. Refused here, not by CROSSSLOT later.
  if (valid('REDIS_CLUSTER_NODES') && hashTagOf(env.QUEUE_PREFIX || 'memfed') === null) {
    out.push(`QUEUE_PREFIX: "${env.QUEUE_PREFIX || 'memfed'}" has no hash tag; on a Redis Cluster (REDIS_CLUSTER_NODES) use one, e.g. {${env.QUEUE_PREFIX || 'memfed'}}, so each queue's keys share a slot`);
  }
  return out;
}

/** The secret values of this process's environment (for errors raised before a Config exists). */
export function environmentSecrets(): string[] {
  return secretsOf(process.env);
}

/** The secret values of a config, for the logger to mask (src/redact.ts). */
export function configSecrets(config: Config): string[] {
  return secretsOf({ API_KEY: config.apiKey, ADMIN_TOKEN: config.adminToken, DATABASE_URL: config.databaseUrl, REDIS_URL: config.redisUrl, FED_PEERS: config.federation.peers.map((p) => p.url).join(',') });
}

/**
 * MEMFED_TEST_FAULT (TEST-ONLY deliberately broken builds): the raw process values, parsed
 * and guarded in src/test-faults.ts. Process-wide on purpose: the hooks sit in store and
 * federation code that has no Config, and every node of a test run must break alike.
 */
export const testFaultEnv = { faults: process.env.MEMFED_TEST_FAULT, nodeEnv: process.env.NODE_ENV };

/**
 * MEMFED_TEST_CLOCK_SKEW_MS (TEST-ONLY signed offset of the wall clock, ms): the raw process
 * values, parsed and guarded in src/clock.ts, process-wide for the same reason.
 */
export const testClockEnv = { skewMs: process.env.MEMFED_TEST_CLOCK_SKEW_MS, nodeEnv: process.env.NODE_ENV };

/** Whether federation is on (docs/wire.md: W >= 1, which config enforces, and at least one peer). */
export function federationEnabled(config: Config): boolean {
  return config.federation.peers.length > 0;
}

/** The variables and their effective values, secrets masked, for the startup log. */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    nodeId: config.nodeId,
    http: config.http,
    workerHttpPort: config.workerHttpPort,
    database: redactUrl(config.databaseUrl),
    redis: describeRedisTarget(config.redis),
    queuePrefix: config.queuePrefix,
    processId: config.processId || 'derived',
    peers: config.federation.peers.map((p) => ({ id: p.id, flavour: p.flavour })),
    quorumW: config.federation.quorumW,
    concurrency: config.concurrency,
    push: config.push,
    catchup: config.catchup,
    retention: config.retention,
    dlq: config.dlq,
    tierTtlSecs: config.tierTtlSecs,
    expiry: config.expiry,
    repair: config.repair,
    workerQueues: config.workerQueues,
    audit: config.audit,
    governance: config.governance.file ? `file ${config.governance.file}` : config.governance.inline ? 'inline' : 'none',
    httpServer: config.httpServer,
    tls: { cert: config.tls.certFile || 'unset', ca: config.tls.caFile || 'unset', requireClientCert: config.tls.requireClientCert },
    apiKey: config.apiKey ? 'set' : 'unset',
    adminToken: config.adminToken ? 'set' : 'unset',
  };
}
