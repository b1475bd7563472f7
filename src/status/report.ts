import type { Db } from '../db/client.js';
import { peersNow } from '../federation/peer-directory.js';
import type { PeerSpec } from '../federation/peers.js';
import { formatTimestamp } from '../memory/time.js';
import { auditFigures, auditHead, lastCheckpoint } from '../store/audit.js';
import { listCursors, peerLag } from '../store/cursors.js';
import { dlqStats } from '../store/dlq.js';
import { normalizeDbTime } from '../store/memories.js';
import { catchupLagSeconds, listWatermarks } from '../store/watermarks.js';
import { peerState, type PeerState } from './state.js';
import { now as clockNow } from '../clock.js';

/** One queue's job counts and the workers connected to it (any process, this prefix). */
export interface QueueStatus {
  name: string;
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
  workers: number;
}

/** Reads every queue's figures; implemented over BullMQ in queues/ (src never imports it). */
export type QueueStatusSource = () => Promise<QueueStatus[]>;

export interface PeerStatus {
  id: string;
  url: string;
  state: PeerState;
  push: {
    /** The last time the peer acked a push (the cursor moved). */
    lastSuccessAt: string | null;
    /** Change-feed rows after the peer's cursor, and the age of the oldest of them. */
    lagChanges: number;
    lagSeconds: number;
    failureStreak: number;
    lastError: string | null;
    lastErrorClass: string | null;
    lastErrorAt: string | null;
    /** The reconciler leaves the peer alone until then (unenrolled, throttled). */
    retryAt: string | null;
  };
  pull: {
    lastPullAt: string | null;
    lastSuccessAt: string | null;
    /** Rows the last pull left behind, and the age of the newest row applied while behind. */
    lagRows: number;
    lagSeconds: number;
    failureStreak: number;
    lastError: string | null;
    lastErrorAt: string | null;
  };
  dlq: { pending: number; quarantined: number };
}

export interface StatusReport {
  nodeId: string;
  generatedAt: string;
  peers: PeerStatus[];
  /** null when the queues could not be read (Redis down): `queuesError` says why. */
  queues: QueueStatus[] | null;
  queuesError: string | null;
  audit: {
    headSeq: number;
    headHash: string | null;
    lastCheckpoint: { seq: number; at: string } | null;
    /** Age of the oldest entry no checkpoint covers yet (0: all covered). */
    uncheckpointedAgeSeconds: number;
    /** Outbox rows pending for more than 30 s: the audit worker should have appended them. */
    outboxStuck: number;
  };
}

export interface StatusDeps {
  db: Db;
  nodeId: string;
  /** The peers to report on; `paused` comes from runtime peer management (default false). */
  peers: ReadonlyArray<{ id: string; url: string; paused?: boolean }>;
  queues: QueueStatusSource;
  /** How long the queue figures may take (BullMQ waits for a Redis that is down for ever). */
  queueTimeoutMs?: number;
  now?: () => Date;
}

const QUEUE_TIMEOUT_MS = 3000;

/**
 * The peers a report covers: the node's peer list (the peers table, active and paused;
 * removed peers are no longer part of the mesh), plus `FED_PEERS` entries the table does
 * not hold yet (a node that never started seeds them at its first start).
 */
export async function statusPeers(db: Db, configured: readonly PeerSpec[]): Promise<StatusDeps['peers']> {
  return [...(await peersNow(db, configured)).values()].filter((p) => p.state !== 'removed').map((p) => ({ id: p.id, url: p.url, paused: p.state === 'paused' }));
}

/** The queue figures, or why there are none: a report must come back while Redis is down. */
async function readQueues(source: QueueStatusSource, timeoutMs: number): Promise<Pick<StatusReport, 'queues' | 'queuesError'>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from Redis within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return { queues: await Promise.race([source(), timeout]), queuesError: null };
  } catch (err) {
    return { queues: null, queuesError: String((err as Error)?.message ?? err).slice(0, 300) };
  } finally {
    clearTimeout(timer);
  }
}

const time = (v: string | null): string | null => (v === null ? null : normalizeDbTime(v));
const epoch = (v: string | null): number | null => (v === null ? null : Date.parse(normalizeDbTime(v)) / 1000);

/**
 * The mesh at a glance, as `memfed status` and `GET /api/v1/admin/status` show it: the one
 * place the report is built, from the same store reads the Prometheus collectors use.
 */
export async function buildStatusReport(deps: StatusDeps): Promise<StatusReport> {
  const { db } = deps;
  const ids = deps.peers.map((p) => p.id);
  // Read alongside the database; a failure is reported, not thrown: the report matters
  // most when something is down.
  const queues = readQueues(deps.queues, deps.queueTimeoutMs ?? QUEUE_TIMEOUT_MS);
  const [cursors, marks, lag, dlq, figures, head, checkpoint] = await Promise.all([listCursors(db), listWatermarks(db), peerLag(db, ids), dlqStats(db), auditFigures(db), auditHead(db), lastCheckpoint(db)]);
  const now = (deps.now ?? (() => new Date(clockNow())))();
  const cursorOf = new Map(cursors.map((c) => [c.peerId, c]));
  const markOf = new Map(marks.map((w) => [w.peerId, w]));
  const dlqOf = new Map(dlq.byPeer.map((d) => [d.peerId, d]));
  const peers = deps.peers.map((p): PeerStatus => {
    const c = cursorOf.get(p.id);
    const w = markOf.get(p.id);
    const pushStreak = c?.failureStreak ?? 0;
    const pullStreak = w?.failureStreak ?? 0;
    return {
      id: p.id,
      url: p.url,
      state: peerState({ paused: p.paused ?? false, pushFailureStreak: pushStreak, pullFailureStreak: pullStreak }),
      push: {
        lastSuccessAt: time(c?.lastAckAt ?? null),
        lagChanges: lag.get(p.id)?.rows ?? 0,
        lagSeconds: lag.get(p.id)?.seconds ?? 0,
        failureStreak: pushStreak,
        lastError: c?.lastError ?? null,
        lastErrorClass: c?.lastErrorClass ?? null,
        lastErrorAt: time(c?.lastErrorAt ?? null),
        retryAt: time(c?.retryAt ?? null),
      },
      pull: {
        lastPullAt: time(w?.lastPullAt ?? null),
        lastSuccessAt: time(w?.lastSuccessAt ?? null),
        lagRows: w?.lagRows ?? 0,
        lagSeconds: w ? catchupLagSeconds(w.lagRows, epoch(w.lastRowAt), now.getTime() / 1000) : 0,
        failureStreak: pullStreak,
        lastError: w?.lastError ?? null,
        // A pull that records an error also stamps last_pull_at.
        lastErrorAt: w?.lastError ? time(w.lastPullAt) : null,
      },
      dlq: { pending: dlqOf.get(p.id)?.pending ?? 0, quarantined: dlqOf.get(p.id)?.quarantined ?? 0 },
    };
  });
  return {
    nodeId: deps.nodeId,
    generatedAt: formatTimestamp(now.getTime() * 1000),
    peers,
    ...(await queues),
    audit: {
      headSeq: figures.headSeq,
      headHash: head?.hash ?? null,
      lastCheckpoint: checkpoint ? { seq: checkpoint.seq, at: checkpoint.at } : null,
      uncheckpointedAgeSeconds: figures.lastCheckpointAgeSeconds,
      outboxStuck: figures.outboxDepth,
    },
  };
}
