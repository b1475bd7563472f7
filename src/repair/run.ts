import type { AuditRecorder } from '../audit/events.js';
import type { Config, PeerConfig } from '../config.js';
import type { Db } from '../db/client.js';
import type { Policy } from '../governance.js';
import type { Logger } from '../logger.js';
import { formatTimestamp, nowMicros } from '../memory/time.js';
import type { Metrics } from '../metrics.js';
import type { PeerClient } from '../federation/client.js';
import { applyFromPeer } from '../federation/receive.js';
import { parsePushBody, pushBodyOf } from '../federation/wire.js';
import { bucketDigests, dropLocalRows, rowKeys, type BucketDigest, type RowKey } from '../store/repair-digests.js';
import { differingBuckets, groupLeaves, planRows, splitBuckets } from './plan.js';
import { MAX_DEPTH, MAX_IDS, MAX_KEYS, MAX_PREFIXES, type DigestsAnswer, type KeysAnswer } from './protocol.js';
import { repairItems } from './serve.js';

/** Why a repair runs: its schedule, an operator, or this node found it was restored. */
export type RepairTrigger = 'schedule' | 'operator' | 'restored';

export interface RepairDeps {
  db: Db;
  client: PeerClient;
  nodeId: string;
  logger: Logger;
  metrics: Metrics;
  audit: AuditRecorder;
  policy: Policy | null;
  clockSkewMs: number;
  memoryMaxBytes: number;
  tombstoneGraceMs: number;
  /** A run stops after this (the next one starts over; what was repaired stays repaired). */
  budgetMs: number;
  /** Push batches: rows and bytes (PUSH_BATCH_MAX, PUSH_BATCH_MAX_BYTES). */
  pushBatchMax: number;
  pushBatchMaxBytes: number;
  /** Tree shape (tests narrow small data sets through every level): top fan-out in hex digits, leaf size. */
  tuning?: { topDepth?: number; leafRows?: number };
}

/** RepairDeps from the node's configuration and the process's connections. */
export function repairDepsFrom(config: Config, io: Pick<RepairDeps, 'db' | 'client' | 'logger' | 'metrics' | 'audit' | 'policy'>): RepairDeps {
  return {
    ...io,
    nodeId: config.nodeId,
    clockSkewMs: config.federation.clockSkewMs,
    memoryMaxBytes: config.limits.memoryMaxBytes,
    tombstoneGraceMs: config.repair.tombstoneGraceMs,
    budgetMs: config.repair.runBudgetMs,
    pushBatchMax: config.push.batchMax,
    pushBatchMaxBytes: config.push.batchMaxBytes,
  };
}

export interface RepairResult {
  peer: string;
  trigger: RepairTrigger;
  requests: number;
  bucketsCompared: number;
  rowsCompared: number;
  /** Rows asked from the peer (the ids that differ and the peer's version may win). */
  fetched: number;
  pulled: number;
  /** Rows sent to the peer (and accepted by it). */
  pushed: number;
  /** Rows a side refused on apply (admission, validation): reported, not retried by repair. */
  refused: number;
  dropped: number;
  beyondGrace: { local: number; remote: number; sample: string[] };
  /** The run hit its budget before comparing everything. */
  incomplete: boolean;
  durationMs: number;
}

/** A bucket is compared row by row once it holds at most this many rows. */
const LEAF_ROWS = 64;
/** Top-level fan-out: 16^3 = 4,096 buckets (about 250 rows each at a million rows). */
const TOP_DEPTH = MAX_DEPTH;
/** Rows asked for per `keys` request (leaves grouped up to this many expected rows). */
const KEYS_PER_REQUEST = MAX_KEYS / 2;

/**
 * Anti-entropy repair against one memfed peer: both sides' bucket digests are compared from
 * the top, differing buckets narrowed one hex digit at a time until they are small, their
 * rows' LWW keys compared, and then only the differing rows exchanged: the peer's winning
 * versions pulled and applied here through the normal admission + LWW path, ours pushed as a
 * normal signed push (the peer's own admission rules decide). Cost follows the difference:
 * identical nodes exchange one `digests` request.
 */
export async function repairWithPeer(deps: RepairDeps, peer: PeerConfig, trigger: RepairTrigger): Promise<RepairResult> {
  const started = Date.now();
  const out: RepairResult = { peer: peer.id, trigger, requests: 0, bucketsCompared: 0, rowsCompared: 0, fetched: 0, pulled: 0, pushed: 0, refused: 0, dropped: 0, beyondGrace: { local: 0, remote: 0, sample: [] }, incomplete: false, durationMs: 0 };
  const ask = async <T>(op: string, body: Record<string, unknown>): Promise<T> => {
    out.requests++;
    deps.metrics.repairRequests.inc({ peer: peer.id, op });
    return (await deps.client.repair(peer, { op, ...body })) as T;
  };
  const remoteDigests = async (prefixes: string[], depth: number) => {
    const a = await ask<DigestsAnswer>('digests', { prefixes, depth });
    return new Map<string, BucketDigest>((Array.isArray(a?.buckets) ? a.buckets : []).map(([p, n, h]) => [p, { n, h }]));
  };
  const overBudget = () => Date.now() - started > deps.budgetMs;
  const horizonUs = BigInt(Math.trunc(nowMicros() - deps.tombstoneGraceMs * 1000));
  const restored = trigger === 'restored';
  try {
    // Level by level: the differing buckets of one prefix length at a time.
    const leafRows = deps.tuning?.leafRows ?? LEAF_ROWS;
    let level: { prefixes: string[]; depth: number }[] = [{ prefixes: [''], depth: deps.tuning?.topDepth ?? TOP_DEPTH }];
    const leaves: Array<{ prefix: string; rows: number }> = [];
    while (level.length > 0 && !overBudget()) {
      const next: { prefixes: string[]; depth: number }[] = [];
      for (const req of level) {
        // Both sides' digests at once: the local scan costs what the remote one does.
        const [local, remote] = await Promise.all([bucketDigests(deps.db, req.prefixes, req.depth), remoteDigests(req.prefixes, req.depth)]);
        out.bucketsCompared += new Set([...local.keys(), ...remote.keys()]).size;
        const split = splitBuckets(differingBuckets(local, remote), local, remote, leafRows);
        leaves.push(...split.leaves);
        for (let i = 0; i < split.narrow.length; i += MAX_PREFIXES) next.push({ prefixes: split.narrow.slice(i, i + MAX_PREFIXES), depth: 1 });
      }
      level = next;
    }
    if (level.length > 0) out.incomplete = true;
    for (const group of groupLeaves(leaves, KEYS_PER_REQUEST, MAX_PREFIXES)) {
      if (overBudget()) {
        out.incomplete = true;
        break;
      }
      const [local, answer] = await Promise.all([rowKeys(deps.db, group), ask<KeysAnswer>('keys', { prefixes: group })]);
      const remote: RowKey[] = (Array.isArray(answer?.keys) ? answer.keys : []).map(([id, time, tomb, digest]) => ({ id, time, tomb: tomb === 1, digest }));
      out.rowsCompared += local.length + remote.length;
      const plan = planRows(local, remote, { horizonUs, restored });
      await pull(deps, peer, plan.pull, out, ask);
      await push(deps, peer, plan.push, out);
      if (plan.drop.length > 0) {
        const dropped = await dropLocalRows(deps.db, plan.drop);
        out.dropped += dropped.length;
        deps.metrics.repairRows.inc({ peer: peer.id, direction: 'dropped' }, dropped.length);
      }
      out.beyondGrace.local += plan.beyondGrace.local.length;
      out.beyondGrace.remote += plan.beyondGrace.remote.length;
      for (const k of [...plan.beyondGrace.local, ...plan.beyondGrace.remote]) if (out.beyondGrace.sample.length < 20) out.beyondGrace.sample.push(k.id);
      deps.metrics.repairRows.inc({ peer: peer.id, direction: 'beyond_grace' }, plan.beyondGrace.local.length + plan.beyondGrace.remote.length);
    }
    out.durationMs = Date.now() - started;
    deps.metrics.repairRuns.inc({ peer: peer.id, trigger, outcome: out.incomplete ? 'budget' : 'ok' });
    deps.metrics.repairBuckets.inc({ peer: peer.id }, out.bucketsCompared);
    deps.metrics.repairDuration.observe({ peer: peer.id }, out.durationMs / 1000);
    if (!out.incomplete) deps.metrics.repairLastSuccess.set({ peer: peer.id }, Math.floor(Date.now() / 1000));
    if (out.beyondGrace.local + out.beyondGrace.remote > 0) deps.logger.warn({ peer: peer.id, ...out.beyondGrace }, 'repair found rows only one side holds, older than TOMBSTONE_GRACE: not sent (they may be copies of deletes whose tombstones are gone)');
    deps.audit.record({ kind: 'repair.completed', actor: deps.nodeId, subject: peer.id, details: { ...out } });
    deps.logger.info({ ...out }, 'repair run finished');
    return out;
  } catch (err) {
    deps.metrics.repairRuns.inc({ peer: peer.id, trigger, outcome: 'failed' });
    throw err;
  }
}

/** Fetches the peer's versions of `ids` and applies them as any rows from the peer are applied. */
async function pull(deps: RepairDeps, peer: PeerConfig, ids: string[], out: RepairResult, ask: <T>(op: string, body: Record<string, unknown>) => Promise<T>): Promise<void> {
  let todo = ids;
  while (todo.length > 0) {
    const batch = todo.slice(0, MAX_IDS);
    todo = todo.slice(MAX_IDS);
    out.fetched += batch.length;
    const body = await ask<Record<string, unknown> & { more?: unknown }>('rows', { ids: batch });
    // Parsed and admitted exactly as a push body from this peer (a bad row is skipped and counted).
    const parsed = parsePushBody({ ...body, sender_agent_id: peer.id }, formatTimestamp(nowMicros()), { memoryMaxBytes: deps.memoryMaxBytes });
    const r = await applyFromPeer(deps, peer.id, 'repair', parsed);
    const changed = r.applied.length + r.deleted.length;
    out.pulled += changed;
    out.refused += r.refused.length + parsed.skipped.length;
    deps.metrics.repairRows.inc({ peer: peer.id, direction: 'pulled' }, changed);
    if (parsed.skipped.length > 0) deps.logger.warn({ peer: peer.id, skipped: parsed.skipped.slice(0, 20) }, 'repair: rows served by the peer did not validate; skipped');
    // The rest of a batch cut by the peer's byte budget (never more than what was asked).
    const asked = new Set(batch);
    const more = Array.isArray(body.more) ? body.more.filter((id): id is string => typeof id === 'string' && asked.has(id)) : [];
    if (more.length > 0 && more.length < batch.length) {
      todo = [...more, ...todo];
      out.fetched -= more.length;
    }
  }
}

/** Sends our winning versions of `ids` to the peer as normal signed pushes. */
async function push(deps: RepairDeps, peer: PeerConfig, ids: string[], out: RepairResult): Promise<void> {
  if (ids.length === 0) return;
  const items = await repairItems(deps.db, ids);
  let batch: typeof items = [];
  let bytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    out.requests++;
    deps.metrics.repairRequests.inc({ peer: peer.id, op: 'push' });
    const res = await deps.client.push(peer, pushBodyOf(deps.nodeId, peer.id, batch));
    const skipped = (res.results ?? []).filter((r) => r.status === 'skipped').length;
    const sent = batch.length - skipped;
    out.pushed += sent;
    out.refused += skipped;
    deps.metrics.repairRows.inc({ peer: peer.id, direction: 'pushed' }, sent);
    if (skipped > 0) deps.logger.warn({ peer: peer.id, skipped: (res.results ?? []).filter((r) => r.status === 'skipped').slice(0, 20) }, 'repair: the peer refused rows it was sent');
    batch = [];
    bytes = 0;
  };
  for (const item of items) {
    if (batch.length > 0 && (batch.length >= deps.pushBatchMax || bytes + item.bytes > deps.pushBatchMaxBytes)) await flush();
    batch.push(item);
    bytes += item.bytes;
  }
  await flush();
}
