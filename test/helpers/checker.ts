import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Sql } from '../../src/db/client.js';
import { parseTimestamp } from '../../src/memory/time.js';
import type { UpstreamReceiver } from './upstream-peer.js';

/*
 * The history checker of the fault campaign ("nothing lost, no resurrection,
 * convergence"). Described for readers in docs/testing.md, "The history checker".
 *
 * The client records every operation it attempts, per memory id, in order: creates
 * (client-chosen ids), updates, deletes, bulk creates, and re-creates of a deleted id.
 * The mixed workload (burst) runs the operations of one id one after another, on the
 * node that took the id's last write, and never touches an id again after an operation
 * whose outcome is unknown, so the client order is the LWW order and the id's final
 * state is known up to that last unknown operation. Outcomes:
 *   acked      201/200: committed and acknowledged by the quorum.
 *   committed  503 quorum_not_met (the commit stands), a bulk create (no quorum wait), or
 *              a 409/404 on a retry (an earlier attempt committed): committed locally.
 *   unknown    timeout, reset, 5xx: may or may not have committed.
 *   conflict   a re-create of a deleted id answered 409: the tombstone held (expected).
 *   refused    any other 4xx: a finding (the workload sends only valid requests).
 *
 * Expected final state of an id: the result of its last acked or committed operation
 * (a document whose content the client chose, every field of it known for updates; or a
 * tombstone), or of a later unknown one. verify() polls every node (bounded deadline)
 * until every node holds, for every attempted id, the same state (same full document or
 * the same tombstone time) and it is an expected one, and (memfed nodes) every delivery
 * cursor is at its feed head (with every feed row visible: below the server-wide horizon
 * of open transactions); then reports per node:
 *   lost / lostCommitted  the id's required state (acked / committed) is not held: the
 *                         id is missing or holds an older version
 *   resurrected           the required state is a tombstone, the node holds it live
 *   partial               only unknown operations, another node holds their result
 *   unexpected            rows of ids never written (or only refused)
 *   duplicateRows         >1 row per doc id, or a row whose key differs from its doc id
 *                         (the id-drift query)
 *   duplicateApplies      more change-feed rows for an id than versions the workload
 *                         could have made (see below)
 *   watermarkViolations   a cursor or watermark going backwards, beyond a feed head or
 *                         past a version the peer does not hold (see below)
 *   stuckCursors          delivery cursors behind the feed head
 * and over all nodes `diverged`: ids whose state differs between nodes.
 *
 * Duplicate applies. Every commit appends one change_feed row; a row applied from a peer
 * carries origin_peer; an LWW no-op appends nothing. So on a node X, for one id:
 *   local rows (origin_peer IS NULL)  <= attempts of operations sent to X
 *   apply rows (origin_peer NOT NULL) <= attempts of operations sent to other nodes
 * since each version is applied at most once per node. With one version per id (the
 * old create-only workload) both bounds are 1. It is a bound, not an identity: a version
 * coalesced away by a push (a newer one sent instead) leaves room for another to be
 * applied twice. For an ai-memory-style receiver the per-id delivery counter is bounded
 * by the id's version count instead.
 *
 * Watermark violations:
 *   - a delivery cursor (peer_cursors), a catch-up cursor watermark or a `since`
 *     watermark (peer_watermarks) seen going backwards between two samples;
 *   - a delivery cursor beyond its own node's feed head, a cursor watermark beyond the
 *     pulled peer's feed head, a `since` watermark beyond the newest updated_at it can
 *     have pulled (a position that never existed);
 *   - a delivery cursor X->P at or past the latest change of an id on X (not originated
 *     by P, the id not in X's DLQ for P) while P holds that id in an older LWW version or
 *     not at all: the cursor skipped an undelivered version. Checked on every sample for
 *     the ids the cursor passed since the previous sample (the cursor is read before the
 *     peer's rows, so this is race-free), and in full at the end.
 *
 * The checker's own failures count: a sample or poll that throws is counted, its error
 * kept, and problems() reports it (a run whose checker could not look is not clean), as
 * it reports a run with fewer acknowledged writes or samples than the test demands.
 */

export type Outcome = 'acked' | 'committed' | 'unknown' | 'refused' | 'conflict';
export type Op = 'create' | 'update' | 'delete' | 'bulk' | 'recreate' | 'archive' | 'restore' | 'link';
/** The operations of the default mixed workload. */
export const OPS: readonly Op[] = ['create', 'update', 'delete', 'bulk', 'recreate'];
/** Every operation the checker can send (archive, restore and link when a workload asks for them). */
export const ALL_OPS: readonly Op[] = [...OPS, 'archive', 'restore', 'link'];

/** What a node holding the result of an operation shows. */
export type Expected =
  | { deleted: true }
  | {
      deleted: false;
      fields?: Record<string, unknown>;
      doc?: Record<string, unknown>;
      /** Whether the memory is archived (unchecked when absent). */
      archived?: boolean;
      /** Links from this memory that must be live, as `target|relation`. */
      links?: string[];
    };

export interface WriteRecord {
  id: string;
  op: Op;
  /** Index of this operation among the id's operations. */
  seq: number;
  node: string;
  outcome: Outcome;
  status?: number;
  error?: string;
  attempts: number;
  startedAt: number;
  endedAt: number;
  expect: Expected;
}

export interface Target {
  id: string;
  url: string;
}

/** A node as the checker sees it. */
export type NodeView =
  | { kind: 'memfed'; id: string; sql: Sql; peers: string[] }
  | { kind: 'receiver'; id: string; receiver: UpstreamReceiver };

export interface NodeReport {
  node: string;
  /** Live ids held. */
  present: number;
  lost: string[];
  lostCommitted: string[];
  resurrected: string[];
  partial: string[];
  unexpected: string[];
  duplicateRows: Array<{ id: string; rows: number }>;
  duplicateApplies: Array<{ id: string; applies: number; allowed: number; byOrigin: Record<string, number> }>;
  watermarkViolations: string[];
  stuckCursors: string[];
  /** ms from the reference point (heal, else verify start) until this node first held every required state. */
  heldMs: number | null;
  /** ... and also had every delivery cursor at its feed head (fully converged). */
  convergedMs: number | null;
}

export interface Report {
  scenario: string;
  /** Distinct ids the client wrote to. */
  attempted: number;
  /** Operations, by outcome. */
  outcomes: Record<Outcome, number>;
  byOp: Record<Op, Record<Outcome, number>>;
  mustConverge: number;
  converged: boolean;
  /** ms from the heal (or verify start when never marked) until every node converged. */
  convergenceMs: number | null;
  nodes: NodeReport[];
  /** Ids whose state differs between nodes: node -> short state. */
  diverged: Array<{ id: string; states: Record<string, string> }>;
  samples: number;
  sampleErrors: number;
  /** The first few errors of failed samples and polls. */
  sampleErrorMessages: string[];
}

/** The least a fault test demands of its run, so that a clean report is not vacuous. */
export interface Minimums {
  /** Operations acknowledged by the quorum (201/200). */
  acked: number;
  /** Checker samples of cursors and watermarks taken during the run. */
  samples: number;
}

const pos = (txid: string, seq: string) => ({ txid: BigInt(txid), seq: BigInt(seq) });
type Pos = ReturnType<typeof pos>;
const cmp = (a: Pos, b: Pos) => (a.txid !== b.txid ? (a.txid < b.txid ? -1 : 1) : a.seq === b.seq ? 0 : a.seq < b.seq ? -1 : 1);
const show = (p: Pos) => `(${p.txid},${p.seq})`;

function decodeWatermark(cursor: string | null): Pos | null {
  const m = cursor ? /^v1\.(\d+)\.(\d+)$/.exec(cursor) : null;
  return m ? pos(m[1]!, m[2]!) : null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A node's state of one id. `key` orders versions like LWW: (time µs, tombstone?, digest). */
type State =
  | { kind: 'live'; doc: Record<string, unknown>; docText: string; coreText: string; fromReceiver: boolean; key: LwwKey; archived: boolean; links: string[] }
  | { kind: 'tombstone'; deletedAt: string; key: LwwKey };
interface LwwKey {
  micros: bigint;
  tomb: 0 | 1;
  digest: string;
}
const cmpKey = (a: LwwKey, b: LwwKey) => (a.micros !== b.micros ? (a.micros < b.micros ? -1 : 1) : a.tomb !== b.tomb ? a.tomb - b.tomb : a.digest === b.digest ? 0 : a.digest < b.digest ? -1 : 1);

/** Canonical JSON (sorted keys): equal documents render equal. */
function canon(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v as object).sort().map((k) => `${JSON.stringify(k)}:${canon((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

function showState(s: State | undefined): string {
  if (!s) return 'absent';
  if (s.kind === 'tombstone') return `tombstone@${s.deletedAt}`;
  return `live v${String(s.doc.version)}${s.archived ? ' archived' : ''}${s.links.length ? ` links ${s.links.length}` : ''} ${String(s.doc.content ?? '').slice(0, 40)}`;
}

/** Same state on two nodes: the same full document, or tombstones of the same time. */
function sameState(a: State | undefined, b: State | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.kind !== b.kind) return false;
  if (a.kind === 'tombstone') return b.kind === 'tombstone' && (a.deletedAt === '' || b.deletedAt === '' || a.deletedAt === b.deletedAt);
  if (b.kind !== 'live') return false;
  // A receiver keeps the wire document: compare it on the fields it is sure to carry.
  return a.fromReceiver || b.fromReceiver ? a.coreText === b.coreText : a.docText === b.docText;
}

function matches(s: State | undefined, e: Expected): boolean {
  if (!s) return false;
  if (e.deleted) return s.kind === 'tombstone';
  if (s.kind !== 'live') return false;
  if (e.doc && canon(s.doc) !== canon(e.doc)) return false;
  if (e.archived !== undefined && s.archived !== e.archived) return false;
  if (e.links && !e.links.every((l) => s.links.includes(l))) return false;
  for (const [k, v] of Object.entries(e.fields ?? {})) if (canon(s.doc[k]) !== canon(v)) return false;
  return true;
}

const CERTAIN: ReadonlySet<Outcome> = new Set(['acked', 'committed']);
/** Outcomes after which the operation may have made a version. */
const MAY_HAVE_WRITTEN: ReadonlySet<Outcome> = new Set(['acked', 'committed', 'unknown']);

/** The mixed workload: operation kinds in a repeating pattern (unavailable kinds fall back to a create). */
const MIX: readonly Op[] = ['create', 'create', 'update', 'bulk', 'update', 'delete', 'create', 'update', 'recreate', 'delete'];
const BULK_SIZE = 3;

export class SetChecker {
  /** Every operation, in the order it was started. */
  readonly writes: WriteRecord[] = [];
  private readonly byId = new Map<string, WriteRecord[]>();
  private readonly busy = new Set<string>();
  private readonly views = new Map<string, NodeView>();
  private readonly lastCursor = new Map<string, Pos>();
  private readonly lastWatermark = new Map<string, Pos>();
  private readonly lastSince = new Map<string, { micros: number; text: string }>();
  private readonly violations = new Map<string, string[]>();
  private sampler: NodeJS.Timeout | null = null;
  private sampling = false;
  /** Nodes whose database is down on purpose: no sample is taken while any is listed. */
  private readonly paused = new Set<string>();
  private skippedSamples = 0;
  private samples = 0;
  private sampleErrors = 0;
  private readonly errorMessages: string[] = [];
  private seq = 0;
  private opCounter = 0;
  private readonly runId = randomBytes(3).toString('hex');
  private healedAt: number | null = null;
  faultAt: number | null = null;

  constructor(
    readonly scenario: string,
    views: NodeView[],
  ) {
    for (const v of views) {
      this.views.set(v.id, v);
      this.violations.set(v.id, []);
    }
  }

  /** A fresh id the client chooses (valid memfed id: [A-Za-z0-9_:.@-]). */
  nextId(): string {
    return `${this.scenario.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40)}-${this.runId}-${++this.seq}`;
  }

  markFault(): void {
    this.faultAt = Date.now();
  }

  /** The moment the fault is removed: convergence time is measured from here. */
  markHealed(): void {
    this.healedAt = Date.now();
  }

  /** The operations on one id, in order. */
  history(id: string): WriteRecord[] {
    return this.byId.get(id) ?? [];
  }

  /** Distinct ids written to. */
  ids(): string[] {
    return [...this.byId.keys()];
  }

  private begin(id: string, op: Op, node: string, expect: Expected): WriteRecord {
    const list = this.byId.get(id) ?? [];
    const rec: WriteRecord = { id, op, seq: list.length, node, outcome: 'unknown', attempts: 0, startedAt: Date.now(), endedAt: 0, expect };
    list.push(rec);
    this.byId.set(id, list);
    this.writes.push(rec);
    return rec;
  }

  /** Records an operation the test made another way (e.g. planted rows, a crash hook). */
  record(rec: { id: string; node: string; outcome: Outcome; op?: Op; expect?: Expected } & Partial<Omit<WriteRecord, 'id' | 'node' | 'outcome' | 'op' | 'expect'>>): WriteRecord {
    const op = rec.op ?? 'create';
    const r = this.begin(rec.id, op, rec.node, rec.expect ?? (op === 'delete' ? { deleted: true } : { deleted: false }));
    const now = Date.now();
    Object.assign(r, { attempts: 1, startedAt: now, endedAt: now }, rec, { op, seq: r.seq, expect: r.expect });
    return r;
  }

  /** Upgrades the id's last operation, unknown so far, that the test has proven committed. */
  markCommitted(id: string): void {
    const w = this.history(id).at(-1);
    if (w && (w.outcome === 'unknown' || w.outcome === 'refused')) w.outcome = 'committed';
  }

  /**
   * One HTTP operation with retries of an unknown outcome. `classify` maps a response
   * to an outcome (null: use the defaults below) and may read the body.
   */
  private async send(rec: WriteRecord, target: Target, req: { method: string; path: string; body?: unknown }, opts: { timeoutMs?: number; retries?: number }, classify: (status: number, body: string, attempt: number) => Outcome | null): Promise<WriteRecord> {
    const retries = opts.retries ?? 0;
    for (let attempt = 0; attempt <= retries; attempt++) {
      rec.attempts++;
      try {
        const res = await fetch(`${target.url}${req.path}`, {
          method: req.method,
          headers: req.body === undefined ? {} : { 'content-type': 'application/json' },
          body: req.body === undefined ? undefined : JSON.stringify(req.body),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
        });
        const text = await res.text();
        rec.status = res.status;
        const c = classify(res.status, text, attempt);
        if (c) rec.outcome = c;
        else if (res.status === 503 && text.includes('quorum_not_met')) rec.outcome = 'committed';
        else if (res.status >= 400 && res.status < 500) rec.outcome = 'refused';
        else rec.outcome = 'unknown';
        if (rec.outcome === 'refused' || rec.outcome === 'unknown') rec.error = `HTTP ${res.status} ${text.slice(0, 300)}`;
        else delete rec.error;
      } catch (err) {
        const e = err as Error & { cause?: { code?: string; message?: string } };
        rec.outcome = 'unknown';
        rec.error = `${e.name}: ${e.cause?.code ?? e.cause?.message ?? e.message}`;
      }
      if (rec.outcome !== 'unknown') break;
      if (attempt < retries) await sleep(200 * (attempt + 1));
    }
    rec.endedAt = Date.now();
    return rec;
  }

  private newFields(id: string, extra?: Record<string, unknown>): Record<string, unknown> {
    return { title: `chaos ${this.scenario}`, content: `write ${id} #${this.opCounter++}`, tags: ['chaos'], ...extra };
  }

  /**
   * One create with a client-chosen id. `retries` re-sends an unknown outcome with the
   * same id (idempotent: 409 means an earlier attempt committed).
   */
  async write(target: Target, opts: { timeoutMs?: number; retries?: number; body?: Record<string, unknown>; id?: string } = {}): Promise<WriteRecord> {
    const id = opts.id ?? this.nextId();
    const fields = this.newFields(id, opts.body);
    const rec = this.begin(id, 'create', target.id, { deleted: false, fields });
    return this.send(rec, target, { method: 'POST', path: '/api/v1/memories', body: { id, ...fields } }, opts, (s, _b, attempt) => (s === 201 ? 'acked' : s === 409 && attempt > 0 ? 'committed' : null));
  }

  /** A new version of an existing id: new content (and tags); the response's full document is what every node must end with. */
  async update(target: Target, id: string, opts: { timeoutMs?: number; retries?: number } = {}): Promise<WriteRecord> {
    const n = this.opCounter++;
    const body = { content: `update ${id} #${n}`, tags: ['chaos', `u${n}`] };
    const expect: Expected = { deleted: false, fields: body };
    const rec = this.begin(id, 'update', target.id, expect);
    return this.send(rec, target, { method: 'PUT', path: `/api/v1/memories/${encodeURIComponent(id)}`, body }, opts, (s, text) => {
      if (s !== 200) return null;
      try {
        const doc = (JSON.parse(text) as { memory?: Record<string, unknown> }).memory;
        if (doc) expect.doc = doc;
      } catch {
        /* the fields still identify the version */
      }
      return 'acked';
    });
  }

  /** Deletes an id (404 on a retry: an earlier attempt committed). */
  async remove(target: Target, id: string, opts: { timeoutMs?: number; retries?: number } = {}): Promise<WriteRecord> {
    const rec = this.begin(id, 'delete', target.id, { deleted: true });
    return this.send(rec, target, { method: 'DELETE', path: `/api/v1/memories/${encodeURIComponent(id)}` }, opts, (s, _b, attempt) => (s === 200 ? 'acked' : s === 404 && attempt > 0 ? 'committed' : null));
  }

  /** The expectation after `id`'s last (certain) operation, with `change` applied: archive, restore and link keep the document. */
  private carry(id: string, change: { archived?: boolean; link?: string }): Expected {
    const prev = this.history(id).at(-1)?.expect;
    const base = prev && !prev.deleted ? prev : { deleted: false as const };
    return { ...base, ...(change.archived !== undefined ? { archived: change.archived } : {}), ...(change.link ? { links: [...(base.links ?? []), change.link] } : {}) };
  }

  /** Archives a live id (POST /api/v1/archive); `missing` on a retry: an earlier attempt committed. */
  async archive(target: Target, id: string, opts: { timeoutMs?: number; retries?: number } = {}): Promise<WriteRecord> {
    const rec = this.begin(id, 'archive', target.id, this.carry(id, { archived: true }));
    return this.send(rec, target, { method: 'POST', path: '/api/v1/archive', body: { ids: [id], reason: 'chaos' } }, opts, (s, text, attempt) => {
      if (s !== 200) return null;
      try {
        const body = JSON.parse(text) as { archived?: string[]; missing?: string[] };
        if (body.archived?.includes(id)) return 'acked';
        if (attempt > 0 && body.missing?.includes(id)) return 'committed';
      } catch {
        /* unreadable: refused below */
      }
      return 'refused';
    });
  }

  /** Restores an archived id (404 on a retry: an earlier attempt committed). */
  async restore(target: Target, id: string, opts: { timeoutMs?: number; retries?: number } = {}): Promise<WriteRecord> {
    const rec = this.begin(id, 'restore', target.id, this.carry(id, { archived: false }));
    return this.send(rec, target, { method: 'POST', path: `/api/v1/archive/${encodeURIComponent(id)}/restore` }, opts, (s, _b, attempt) => (s === 200 ? 'acked' : s === 404 && attempt > 0 ? 'committed' : null));
  }

  /** Links `id` to `to` (recorded on the source, whose change feed the link enters). */
  async link(target: Target, id: string, to: string, opts: { timeoutMs?: number; retries?: number } = {}): Promise<WriteRecord> {
    const relation = 'related_to';
    const rec = this.begin(id, 'link', target.id, this.carry(id, { link: `${to}|${relation}` }));
    return this.send(rec, target, { method: 'POST', path: '/api/v1/links', body: { source_id: id, target_id: to, relation } }, opts, (s) => (s === 201 ? 'acked' : null));
  }

  /** A create under a deleted id: memfed answers 409 (the tombstone holds) and the id must stay deleted everywhere. */
  async recreate(target: Target, id: string, opts: { timeoutMs?: number } = {}): Promise<WriteRecord> {
    const fields = this.newFields(id, { content: `recreate ${id} #${this.opCounter}` });
    const rec = this.begin(id, 'recreate', target.id, { deleted: false, fields });
    return this.send(rec, target, { method: 'POST', path: '/api/v1/memories', body: { id, ...fields } }, { ...opts, retries: 0 }, (s) => (s === 201 ? 'acked' : s === 409 ? 'conflict' : null));
  }

  /** A bulk create of `size` new ids (bulk does not wait for a quorum: success is `committed`). */
  async bulk(target: Target, size = BULK_SIZE, opts: { timeoutMs?: number; retries?: number } = {}): Promise<WriteRecord[]> {
    const items = Array.from({ length: size }, () => {
      const id = this.nextId();
      return { id, fields: this.newFields(id) };
    });
    const recs = items.map((it) => this.begin(it.id, 'bulk', target.id, { deleted: false, fields: it.fields }));
    const retries = opts.retries ?? 0;
    for (let attempt = 0; attempt <= retries; attempt++) {
      for (const r of recs) r.attempts++;
      try {
        const res = await fetch(`${target.url}/api/v1/memories/bulk`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ memories: items.map((it) => ({ id: it.id, ...it.fields })) }),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
        });
        const text = await res.text();
        for (const r of recs) r.status = res.status;
        if (res.status === 200) {
          const body = JSON.parse(text) as { ids: string[]; errors: Array<{ index: number; code: string; error: string }> };
          const ok = new Set(body.ids);
          for (const [i, r] of recs.entries()) {
            const err = body.errors.find((e) => e.index === i);
            if (ok.has(r.id) || (attempt > 0 && err?.code === 'ID_CONFLICT')) r.outcome = 'committed';
            else {
              r.outcome = 'refused';
              r.error = err ? `${err.code}: ${err.error}` : 'not in the bulk answer';
            }
          }
        } else {
          for (const r of recs) {
            r.outcome = res.status >= 400 && res.status < 500 ? 'refused' : 'unknown';
            r.error = `HTTP ${res.status} ${text.slice(0, 300)}`;
          }
        }
      } catch (err) {
        const e = err as Error & { cause?: { code?: string; message?: string } };
        for (const r of recs) {
          r.outcome = 'unknown';
          r.error = `${e.name}: ${e.cause?.code ?? e.cause?.message ?? e.message}`;
        }
      }
      if (!recs.some((r) => r.outcome === 'unknown')) break;
      if (attempt < retries) await sleep(200 * (attempt + 1));
    }
    for (const r of recs) r.endedAt = Date.now();
    return recs;
  }

  /** An id whose last operation is certain and (for kind `live`) live, or a delete; not in flight; last written on one of `nodes`. */
  private pick(kind: 'live' | 'deleted' | 'archived', nodes: Set<string>, except?: string): { id: string; node: string } | null {
    // Oldest first: spreads updates over the ids instead of hammering the newest one.
    for (const [id, list] of this.byId) {
      if (this.busy.has(id) || id === except) continue;
      const last = list.at(-1)!;
      if (!CERTAIN.has(last.outcome) || !nodes.has(last.node)) continue;
      // An archived memory takes only a restore (updates, deletes and links answer 404).
      if ((last.op === 'archive') !== (kind === 'archived')) continue;
      if (kind === 'archived') return { id, node: last.node };
      const isDelete = last.op === 'delete';
      if (kind === 'deleted' ? isDelete && !list.some((w) => w.op === 'recreate') : !isDelete) {
        // Spread: skip ids already updated a few times.
        if (kind === 'live' && list.filter((w) => w.op === 'update').length >= 3) continue;
        return { id, node: last.node };
      }
    }
    return null;
  }

  /**
   * `count` operations spread round-robin over `targets`, at most `concurrency` in
   * flight, optionally `spacingMs` apart per lane; bounded by `maxMs` (operations not
   * started by then are skipped). The default workload is mixed (creates, updates,
   * deletes, bulk creates, re-creates of deleted ids; an update or delete goes to the
   * node that took the id's last write); `mix: 'creates'` sends creates only, an array
   * of operation kinds repeats that pattern instead.
   */
  async burst(targets: Target[], count: number, opts: { concurrency?: number; spacingMs?: number; timeoutMs?: number; retries?: number; maxMs?: number; mix?: 'mixed' | 'creates' | readonly Op[]; stop?: () => boolean } = {}): Promise<WriteRecord[]> {
    const out: WriteRecord[] = [];
    let next = 0;
    const stopAt = Date.now() + (opts.maxMs ?? 120_000);
    const byNode = new Map(targets.map((t) => [t.id, t]));
    const nodes = new Set(byNode.keys());
    const one = async (i: number): Promise<void> => {
      const target = targets[i % targets.length]!;
      const pattern = opts.mix === 'creates' ? ['create' as const] : opts.mix === undefined || opts.mix === 'mixed' ? MIX : opts.mix;
      const kind = pattern[i % pattern.length]!;
      const picked = kind === 'update' || kind === 'delete' || kind === 'archive' || kind === 'link' ? this.pick('live', nodes) : kind === 'recreate' ? this.pick('deleted', nodes) : kind === 'restore' ? this.pick('archived', nodes) : null;
      // A link's target: another live id last written on the same node (so that node holds it), held still while the link is made.
      const to = picked && kind === 'link' ? this.pick('live', new Set([picked.node]), picked.id) : null;
      if (picked && (kind !== 'link' || to)) {
        this.busy.add(picked.id);
        if (to) this.busy.add(to.id);
        try {
          const t = byNode.get(picked.node)!;
          if (kind === 'update') out.push(await this.update(t, picked.id, opts));
          else if (kind === 'delete') out.push(await this.remove(t, picked.id, opts));
          else if (kind === 'archive') out.push(await this.archive(t, picked.id, opts));
          else if (kind === 'restore') out.push(await this.restore(t, picked.id, opts));
          else if (kind === 'link') out.push(await this.link(t, picked.id, to!.id, opts));
          else out.push(await this.recreate(t, picked.id, opts));
        } finally {
          this.busy.delete(picked.id);
          if (to) this.busy.delete(to.id);
        }
      } else if (kind === 'bulk') out.push(...(await this.bulk(target, BULK_SIZE, opts)));
      else out.push(await this.write(target, opts));
    };
    const lane = async () => {
      while (next < count && Date.now() < stopAt && !opts.stop?.()) {
        await one(next++);
        if (opts.spacingMs) await sleep(opts.spacingMs);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, lane));
    return out;
  }

  counts(): Record<Outcome, number> {
    const c: Record<Outcome, number> = { acked: 0, committed: 0, unknown: 0, refused: 0, conflict: 0 };
    for (const w of this.writes) c[w.outcome]++;
    return c;
  }

  private countsByOp(): Record<Op, Record<Outcome, number>> {
    const out = Object.fromEntries(ALL_OPS.map((o) => [o, { acked: 0, committed: 0, unknown: 0, refused: 0, conflict: 0 }])) as Record<Op, Record<Outcome, number>>;
    for (const w of this.writes) out[w.op][w.outcome]++;
    return out;
  }

  /** Samples cursors and watermarks every `intervalMs` to catch one going backwards. */
  startSampling(intervalMs = 250): void {
    if (this.sampler) return;
    this.sampler = setInterval(() => {
      if (this.sampling) return;
      this.sampling = true;
      this.sample().finally(() => (this.sampling = false));
    }, intervalMs);
    // Never the thing that keeps a failed test's process alive.
    this.sampler.unref();
  }

  stopSampling(): void {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
  }

  private failed(what: string, err: unknown): void {
    this.sampleErrors++;
    if (this.errorMessages.length < 5) this.errorMessages.push(`${what}: ${(err as Error)?.message ?? String(err)}`);
  }

  /**
   * Takes no samples while `node`'s database is down on purpose (a sample reads every
   * node, the peer's rows included); waits for a sample in flight to finish. The first
   * sample after resumeSampling() checks everything the cursors passed meanwhile.
   */
  async pauseSampling(node: string): Promise<void> {
    this.paused.add(node);
    while (this.sampling) await sleep(20);
  }

  resumeSampling(node: string): void {
    this.paused.delete(node);
  }

  /** Watermark violations seen so far while sampling, over all nodes. */
  get violationCount(): number {
    let n = 0;
    for (const v of this.violations.values()) n += v.length;
    return n;
  }

  /** Samples not taken because a node's database was down on purpose. */
  get samplesSkipped(): number {
    return this.skippedSamples;
  }

  /** One sample of every memfed node's cursors and watermarks; failures are counted, never thrown. */
  async sample(): Promise<void> {
    if (this.paused.size > 0) {
      this.skippedSamples++;
      return;
    }
    let ok = true;
    for (const v of this.views.values()) {
      if (v.kind !== 'memfed') continue;
      try {
        await this.sampleNode(v);
      } catch (err) {
        ok = false;
        this.failed(`sample of ${v.id}`, err);
      }
    }
    if (ok) this.samples++;
  }

  private async sampleNode(v: Extract<NodeView, { kind: 'memfed' }>): Promise<void> {
    const cursors = await v.sql<Array<{ peer_id: string; t: string; s: string }>>`SELECT peer_id, txid::text AS t, seq::text AS s FROM peer_cursors`;
    for (const c of cursors) {
      const key = `${v.id}->${c.peer_id}`;
      const p = pos(c.t, c.s);
      const prev = this.lastCursor.get(key);
      // Reported once per regression (the new, lower value becomes the reference).
      if (prev && cmp(p, prev) < 0) this.violate(v.id, `delivery cursor ${key} went back from ${show(prev)} to ${show(p)}`);
      if (prev && cmp(p, prev) > 0) {
        const peer = this.views.get(c.peer_id);
        if (peer) {
          const skipped = await this.skippedVersions(v, c.peer_id, peer, prev, p);
          if (skipped.length > 0) this.violate(v.id, `delivery cursor ${key} passed ${skipped.length} change(s) ${c.peer_id} never received (seen while running): ${skipped.slice(0, 5).join(', ')}`);
        }
      }
      if (!prev || cmp(p, prev) !== 0) this.lastCursor.set(key, p);
    }
    const wms = await v.sql<Array<{ peer_id: string; cursor: string | null; since: string | null }>>`SELECT peer_id, cursor, since FROM peer_watermarks`;
    for (const w of wms) {
      const key = `${v.id}<-${w.peer_id}`;
      const p = decodeWatermark(w.cursor);
      const prev = this.lastWatermark.get(key);
      if (prev && (!p || cmp(p, prev) < 0)) this.violate(v.id, `catch-up watermark ${key} went back from ${show(prev)} to ${p ? show(p) : String(w.cursor)}`);
      if (p && (!prev || cmp(p, prev) !== 0)) this.lastWatermark.set(key, p);
      const sm = w.since === null ? null : parseTimestamp(w.since);
      const prevSince = this.lastSince.get(key);
      if (prevSince && (sm === null || sm < prevSince.micros)) this.violate(v.id, `catch-up since-watermark ${key} went back from ${prevSince.text} to ${String(w.since)}`);
      if (sm !== null && (!prevSince || sm !== prevSince.micros)) this.lastSince.set(key, { micros: sm, text: w.since! });
    }
  }

  private violate(node: string, what: string): void {
    const list = this.violations.get(node)!;
    if (!list.includes(what)) list.push(what);
  }

  /** Every id's state on a node (live rows and tombstones). */
  private async statesOn(v: NodeView): Promise<Map<string, State>> {
    const out = new Map<string, State>();
    if (v.kind === 'receiver') {
      for (const id of v.receiver.deleted) out.set(id, { kind: 'tombstone', deletedAt: '', key: { micros: 0n, tomb: 1, digest: '' } });
      for (const [id, doc] of v.receiver.received) {
        const micros = BigInt(parseTimestamp(doc.updated_at) ?? 0);
        const core = canon(receiverFields(doc));
        out.set(id, { kind: 'live', doc, docText: core, coreText: core, fromReceiver: true, key: { micros, tomb: 0, digest: '' }, archived: false, links: [] });
      }
      return out;
    }
    const rows = await v.sql<Array<{ id: string; doc: Record<string, unknown>; deleted: string | null; micros: string; digest: string; register: string; archived: boolean }>>`
      SELECT id, doc, deleted_at::text AS deleted, digest,
             (extract(epoch FROM COALESCE(deleted_at, updated_at)) * 1000000)::bigint::text AS micros,
             concat_ws('|', archived_at::text, archive_changed_at::text, archive_reason) AS register,
             (archived_at IS NOT NULL AND archived_at >= updated_at) AS archived
      FROM memories`;
    // Links per source: every row (live or removed) with its times, so nodes are compared on the whole LWW set.
    const linkRows = await v.sql<Array<{ source: string; target: string; relation: string; created: string; removed: string | null; live: boolean }>>`
      SELECT source_id AS source, target_id AS target, relation, created_at::text AS created, removed_at::text AS removed,
             (removed_at IS NULL OR created_at > removed_at) AS live
      FROM memory_links ORDER BY source_id, target_id, relation`;
    const linksOf = new Map<string, { live: string[]; text: string[] }>();
    for (const l of linkRows) {
      const e = linksOf.get(l.source) ?? { live: [], text: [] };
      if (l.live) e.live.push(`${l.target}|${l.relation}`);
      e.text.push(`${l.target}|${l.relation}|${l.created}|${l.removed ?? ''}`);
      linksOf.set(l.source, e);
    }
    for (const r of rows) {
      if (r.deleted !== null) out.set(r.id, { kind: 'tombstone', deletedAt: r.deleted, key: { micros: BigInt(r.micros), tomb: 1, digest: '' } });
      else {
        const links = linksOf.get(r.id);
        // The whole state: the document, the archive register, the link set.
        const docText = `${canon(r.doc)}#${r.register}#${links?.text.join(',') ?? ''}`;
        out.set(r.id, { kind: 'live', doc: r.doc, docText, coreText: canon(receiverFields(r.doc)), fromReceiver: false, key: { micros: BigInt(r.micros), tomb: 0, digest: r.digest }, archived: r.archived, links: links?.live ?? [] });
      }
    }
    return out;
  }

  /**
   * Ids whose latest change on `v` lies in (after, upTo], is not from `peerId`, is not in
   * v's DLQ for the peer, and whose state on the peer is older (or absent).
   */
  private async skippedVersions(v: Extract<NodeView, { kind: 'memfed' }>, peerId: string, peer: NodeView, after: Pos | null, upTo: Pos): Promise<string[]> {
    const a = after ?? pos('0', '0');
    const rows = await v.sql<Array<{ id: string; deleted: boolean; micros: string; digest: string }>>`
      SELECT m.id, m.deleted_at IS NOT NULL AS deleted, m.digest,
             (extract(epoch FROM COALESCE(m.deleted_at, m.updated_at)) * 1000000)::bigint::text AS micros
      FROM (SELECT DISTINCT ON (memory_id) memory_id, txid, seq, origin_peer FROM change_feed ORDER BY memory_id, txid DESC, seq DESC) f
      JOIN memories m ON m.id = f.memory_id
      WHERE (f.txid, f.seq) > (${a.txid.toString()}::xid8, ${a.seq.toString()}::bigint)
        AND (f.txid, f.seq) <= (${upTo.txid.toString()}::xid8, ${upTo.seq.toString()}::bigint)
        AND f.origin_peer IS DISTINCT FROM ${peerId}
        AND NOT EXISTS (SELECT 1 FROM federation_push_dlq d WHERE d.peer_id = ${peerId} AND d.memory_id = f.memory_id)`;
    if (rows.length === 0) return [];
    // Read after the cursor and the sender's rows: anything passed was acked before this.
    const held = await this.statesOn(peer);
    const skipped: string[] = [];
    for (const r of rows) {
      const s = held.get(r.id);
      if (!s) skipped.push(r.id);
      else if (peer.kind === 'memfed' && cmpKey(s.key, { micros: BigInt(r.micros), tomb: r.deleted ? 1 : 0, digest: r.deleted ? '' : r.digest }) < 0) skipped.push(r.id);
      else if (peer.kind === 'receiver' && r.deleted && s.kind !== 'tombstone') skipped.push(r.id);
    }
    return skipped;
  }

  /** Peers whose delivery cursor is behind the node's visible feed head. */
  private async behind(v: NodeView): Promise<string[]> {
    if (v.kind !== 'memfed' || v.peers.length === 0) return [];
    const rows = await v.sql<Array<{ peer: string }>>`
      SELECT p.peer FROM unnest(${v.sql.array(v.peers)}::text[]) AS p(peer)
      LEFT JOIN peer_cursors c ON c.peer_id = p.peer
      WHERE EXISTS (SELECT 1 FROM change_feed f
                    WHERE (f.txid, f.seq) > (COALESCE(c.txid, '0'::xid8), COALESCE(c.seq, 0))
                      AND f.txid < pg_snapshot_xmin(pg_current_snapshot()))`;
    return rows.map((r) => r.peer);
  }

  /**
   * Whether the node has feed rows not yet below the server-wide horizon (a transaction
   * anywhere on the server still open): they are invisible to its pushers and to
   * behind(), so the node cannot be called caught up until they become visible.
   */
  private async aboveHorizon(v: NodeView): Promise<boolean> {
    if (v.kind !== 'memfed') return false;
    const [r] = await v.sql<Array<{ above: boolean }>>`SELECT EXISTS (SELECT 1 FROM change_feed WHERE txid >= pg_snapshot_xmin(pg_current_snapshot())) AS above`;
    return r!.above;
  }

  /** The states an id may end in (null: the id may be absent). */
  private candidates(id: string): { expects: Expected[]; certain: WriteRecord | null } {
    const list = this.history(id);
    let k = -1;
    for (let i = list.length - 1; i >= 0; i--) {
      if (CERTAIN.has(list[i]!.outcome)) {
        k = i;
        break;
      }
    }
    const later = list.slice(k + 1).filter((w) => w.outcome === 'unknown');
    const certain = k >= 0 ? list[k]! : null;
    return { expects: [...(certain ? [certain.expect] : []), ...later.map((w) => w.expect)], certain };
  }

  /**
   * Polls until converged or `deadlineMs`, then reports. Never throws on a finding:
   * assert with problems(report, minimums).
   */
  async verify(opts: { deadlineMs?: number; intervalMs?: number; requireCaughtUp?: boolean } = {}): Promise<Report> {
    const started = Date.now();
    const ref = this.healedAt ?? started;
    const deadline = started + (opts.deadlineMs ?? 60_000);
    const requireCaughtUp = opts.requireCaughtUp ?? true;
    const ids = this.ids();
    const cands = new Map(ids.map((id) => [id, this.candidates(id)]));
    const convergedAt = new Map<string, number>();
    const heldAt = new Map<string, number>();
    let states = new Map<string, Map<string, State>>();
    let converged = false;
    let mustConverge = 0;
    for (let round = 0; round < 100_000; round++) {
      try {
        states = new Map();
        for (const v of this.views.values()) states.set(v.id, await this.statesOn(v));
        // The state every node must hold per id: an expected one that some node holds
        // (certain ids must be held; unknown-only ids only once some node holds them).
        const target = new Map<string, State | undefined>();
        for (const id of ids) {
          const c = cands.get(id)!;
          let t: State | undefined;
          for (const s of states.values()) {
            const st = s.get(id);
            if (st && c.expects.some((e) => matches(st, e)) && (!t || cmpKey(st.key, t.key) > 0)) t = st;
          }
          if (t || c.certain) target.set(id, t);
        }
        mustConverge = target.size;
        let all = true;
        for (const v of this.views.values()) {
          const s = states.get(v.id)!;
          let holds = true;
          for (const [id, t] of target) {
            if (!t || !sameState(s.get(id), t)) {
              holds = false;
              break;
            }
          }
          // Every node agrees on ids nobody should hold, too (a refused write, a lost unknown one).
          if (holds) for (const id of ids) if (!target.has(id) && s.has(id)) holds = false;
          if (holds && !heldAt.has(v.id)) heldAt.set(v.id, Date.now());
          const ok = holds && (!requireCaughtUp || ((await this.behind(v)).length === 0 && !(await this.aboveHorizon(v))));
          if (ok && !convergedAt.has(v.id)) convergedAt.set(v.id, Date.now());
          if (!ok) {
            convergedAt.delete(v.id);
            all = false;
          }
        }
        if (all) {
          converged = true;
          break;
        }
      } catch (err) {
        this.failed('verify poll', err);
      }
      if (Date.now() > deadline) break;
      await sleep(opts.intervalMs ?? 200);
    }
    const doneAt = converged ? Math.max(...convergedAt.values()) : null;
    // One last sample so the final positions are checked for regressions too.
    await this.sample();
    this.stopSampling();

    const nodes: NodeReport[] = [];
    for (const v of this.views.values()) {
      try {
        nodes.push(await this.nodeReport(v, states.get(v.id) ?? new Map(), states, cands, heldAt.get(v.id), convergedAt.get(v.id), ref));
      } catch (err) {
        this.failed(`report of ${v.id}`, err);
      }
    }
    const diverged: Report['diverged'] = [];
    for (const id of ids) {
      const per = [...states.entries()].map(([node, s]) => [node, s.get(id)] as const);
      if (per.some(([, s]) => !sameState(s, per[0]![1]))) diverged.push({ id, states: Object.fromEntries(per.map(([n, s]) => [n, showState(s)])) });
    }
    return {
      scenario: this.scenario,
      attempted: ids.length,
      outcomes: this.counts(),
      byOp: this.countsByOp(),
      mustConverge,
      converged,
      convergenceMs: doneAt === null ? null : Math.max(0, doneAt - ref),
      nodes,
      diverged,
      samples: this.samples,
      sampleErrors: this.sampleErrors,
      sampleErrorMessages: [...this.errorMessages],
    };
  }

  private async nodeReport(
    v: NodeView,
    mine: Map<string, State>,
    all: Map<string, Map<string, State>>,
    cands: Map<string, { expects: Expected[]; certain: WriteRecord | null }>,
    held: number | undefined,
    at: number | undefined,
    ref: number,
  ): Promise<NodeReport> {
    const r: NodeReport = {
      node: v.id,
      present: [...mine.values()].filter((s) => s.kind === 'live').length,
      lost: [],
      lostCommitted: [],
      resurrected: [],
      partial: [],
      unexpected: [],
      duplicateRows: [],
      duplicateApplies: [],
      watermarkViolations: [...(this.violations.get(v.id) ?? [])],
      stuckCursors: [],
      heldMs: held === undefined ? null : Math.max(0, held - ref),
      convergedMs: at === undefined ? null : Math.max(0, at - ref),
    };
    for (const [id, c] of cands) {
      const s = mine.get(id);
      if (c.expects.some((e) => matches(s, e))) continue;
      if (c.certain) {
        const wantTomb = c.expects.every((e) => e.deleted);
        if (wantTomb && s?.kind === 'live') r.resurrected.push(id);
        else if (c.certain.outcome === 'acked') r.lost.push(id);
        else r.lostCommitted.push(id);
      } else if ([...all.values()].some((o) => o !== mine && c.expects.some((e) => matches(o.get(id), e)))) r.partial.push(id);
    }
    const everWritten = (id: string) => this.history(id).some((w) => MAY_HAVE_WRITTEN.has(w.outcome) || w.op === 'recreate');
    r.unexpected = [...mine.keys()].filter((id) => !everWritten(id));
    // Version budget per id: attempts of operations that may have written a version.
    const versions = (id: string, pred: (w: WriteRecord) => boolean) => this.history(id).filter((w) => MAY_HAVE_WRITTEN.has(w.outcome) && w.op !== 'recreate' && pred(w)).reduce((n, w) => n + w.attempts, 0);

    if (v.kind === 'receiver') {
      for (const [id, n] of v.receiver.deliveries) {
        const allowed = versions(id, () => true);
        if (n > allowed) r.duplicateApplies.push({ id, applies: n, allowed, byOrigin: { deliveries: n } });
      }
      return r;
    }
    const sql = v.sql;
    const dupDocs = await sql<Array<{ id: string; n: number }>>`SELECT doc->>'id' AS id, count(*)::int AS n FROM memories GROUP BY 1 HAVING count(*) > 1`;
    r.duplicateRows.push(...dupDocs.map((d) => ({ id: String(d.id), rows: d.n })));
    // The id-drift query: a row stored under a key that is not its document's id.
    const drift = await sql<Array<{ id: string }>>`SELECT id FROM memories WHERE doc->>'id' IS DISTINCT FROM id`;
    r.duplicateRows.push(...drift.map((d) => ({ id: d.id, rows: -1 })));

    const feed = await sql<Array<{ memory_id: string; origin: string | null; n: number }>>`
      SELECT memory_id, origin_peer AS origin, count(*)::int AS n FROM change_feed GROUP BY 1, 2`;
    const perId = new Map<string, { local: number; applies: number; byOrigin: Record<string, number> }>();
    for (const f of feed) {
      const e = perId.get(f.memory_id) ?? { local: 0, applies: 0, byOrigin: {} };
      if (f.origin === null) e.local += f.n;
      else {
        e.applies += f.n;
        e.byOrigin[f.origin] = (e.byOrigin[f.origin] ?? 0) + f.n;
      }
      perId.set(f.memory_id, e);
    }
    for (const [id, e] of perId) {
      const allowedLocal = versions(id, (w) => w.node === v.id);
      const allowedApplies = versions(id, (w) => w.node !== v.id);
      if (e.applies > allowedApplies || e.local > allowedLocal) {
        r.duplicateApplies.push({ id, applies: e.applies + e.local, allowed: allowedApplies + allowedLocal, byOrigin: { ...e.byOrigin, ...(e.local ? { local: e.local } : {}) } });
      }
    }

    // Positions against feed heads (own feed for delivery cursors, the peer's for watermarks).
    const head = await feedMax(sql);
    const cursors = await sql<Array<{ peer_id: string; t: string; s: string }>>`SELECT peer_id, txid::text AS t, seq::text AS s FROM peer_cursors`;
    for (const c of cursors) {
      const p = pos(c.t, c.s);
      if (p.txid === 0n && p.seq === 0n) continue;
      if (!head || cmp(p, head) > 0) r.watermarkViolations.push(`delivery cursor ${v.id}->${c.peer_id} ${show(p)} beyond feed head ${head ? show(head) : '(empty feed)'}`);
      const peerView = this.views.get(c.peer_id);
      if (peerView) {
        const skipped = await this.skippedVersions(v, c.peer_id, peerView, null, p);
        if (skipped.length > 0) r.watermarkViolations.push(`delivery cursor ${v.id}->${c.peer_id} passed ${skipped.length} change(s) ${c.peer_id} never received: ${skipped.slice(0, 5).join(', ')}`);
      }
    }
    const wms = await sql<Array<{ peer_id: string; cursor: string | null; since: string | null }>>`SELECT peer_id, cursor, since FROM peer_watermarks`;
    for (const w of wms) {
      const peerView = this.views.get(w.peer_id);
      if (!peerView) continue;
      const p = decodeWatermark(w.cursor);
      if (p && peerView.kind === 'memfed' && !(p.txid === 0n && p.seq === 0n)) {
        const peerHead = await feedMax(peerView.sql);
        if (!peerHead || cmp(p, peerHead) > 0) r.watermarkViolations.push(`catch-up watermark ${v.id}<-${w.peer_id} ${show(p)} beyond ${w.peer_id}'s feed head ${peerHead ? show(peerHead) : '(empty feed)'}`);
      }
      const sm = w.since === null ? null : parseTimestamp(w.since);
      if (sm !== null) {
        const newest = await newestUpdate(peerView);
        if (newest === null || sm > newest) r.watermarkViolations.push(`catch-up since-watermark ${v.id}<-${w.peer_id} ${w.since} beyond the newest updated_at ${w.peer_id} serves (${newest === null ? 'none' : new Date(newest / 1000).toISOString()})`);
      }
    }
    r.stuckCursors = await this.behind(v);
    return r;
  }
}

/** The fields an ai-memory-style receiver is compared on (it keeps the wire document as sent). */
function receiverFields(doc: Record<string, unknown>): Record<string, unknown> {
  const { id, title, content, namespace, tier, tags, version, updated_at } = doc;
  return { id, title, content, namespace, tier, tags, version, updated_at };
}

async function feedMax(sql: Sql): Promise<Pos | null> {
  const rows = await sql<Array<{ t: string; s: string }>>`SELECT txid::text AS t, seq::text AS s FROM change_feed ORDER BY txid DESC, seq DESC LIMIT 1`;
  return rows[0] ? pos(rows[0].t, rows[0].s) : null;
}

/** The newest updated_at (µs) a peer can serve in the `since` form. */
async function newestUpdate(v: NodeView): Promise<number | null> {
  if (v.kind === 'receiver') {
    const all = [...v.receiver.serve, ...v.receiver.received.values()].map((m) => parseTimestamp(m.updated_at)).filter((x): x is number => x !== null);
    return all.length ? Math.max(...all) : null;
  }
  const rows = await v.sql<Array<{ m: string | null }>>`SELECT (extract(epoch FROM max(updated_at)) * 1000000)::bigint::text AS m FROM memories`;
  return rows[0]?.m ? Number(rows[0].m) : null;
}

/** Every finding of a report as a readable line; `[]` means the history is clean and not vacuous. */
export function problems(report: Report, min: Minimums): string[] {
  const out: string[] = [];
  if (!report.converged) out.push(`${report.scenario}: did not converge before the deadline (${report.mustConverge} ids required)`);
  if (report.outcomes.acked < min.acked) out.push(`${report.scenario}: only ${report.outcomes.acked} acknowledged write(s), the test needs at least ${min.acked} (a vacuous run)`);
  if (report.samples < min.samples) out.push(`${report.scenario}: only ${report.samples} checker sample(s), the test needs at least ${min.samples}`);
  if (report.sampleErrors > 0) out.push(`${report.scenario}: ${report.sampleErrors} checker sample(s) or poll(s) failed: ${report.sampleErrorMessages.join(' | ')}`);
  if (report.outcomes.refused > 0) out.push(`${report.scenario}: ${report.outcomes.refused} write(s) refused with a 4xx`);
  const few = (ids: string[]) => `${ids.length} [${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}]`;
  for (const n of report.nodes) {
    if (n.lost.length) out.push(`${n.node}: lost acked ${few(n.lost)}`);
    if (n.lostCommitted.length) out.push(`${n.node}: lost committed (503) ${few(n.lostCommitted)}`);
    if (n.resurrected.length) out.push(`${n.node}: resurrected deleted ${few(n.resurrected)}`);
    if (n.partial.length) out.push(`${n.node}: missing ids other nodes hold ${few(n.partial)}`);
    if (n.unexpected.length) out.push(`${n.node}: unexpected ${few(n.unexpected)}`);
    if (n.duplicateRows.length) out.push(`${n.node}: duplicate rows ${JSON.stringify(n.duplicateRows.slice(0, 5))}`);
    if (n.duplicateApplies.length) out.push(`${n.node}: duplicate applies ${n.duplicateApplies.length}: ${JSON.stringify(n.duplicateApplies.slice(0, 5))}`);
    for (const w of n.watermarkViolations.slice(0, 20)) out.push(`${n.node}: watermark violation: ${w}`);
    if (n.watermarkViolations.length > 20) out.push(`${n.node}: ... ${n.watermarkViolations.length - 20} more watermark violations`);
    if (n.stuckCursors.length) out.push(`${n.node}: delivery cursors behind the feed head for ${n.stuckCursors.join(', ')}`);
  }
  if (report.diverged.length) out.push(`${report.scenario}: ${report.diverged.length} id(s) diverged between nodes: ${JSON.stringify(report.diverged.slice(0, 3))}`);
  return out;
}

/** An event of a run besides the client's operations (a fault injected or healed, a process restarted). */
export interface HistoryEvent {
  /** ms since the epoch. */
  at: number;
  type: string;
  [k: string]: unknown;
}

/**
 * The run as JSON lines a person can read, in time order: `header` first, then every
 * client operation (at its start, with its outcome and duration) merged with `events`,
 * then the report and its findings. Returns the file's path.
 */
export function writeHistory(file: string, checker: SetChecker, opts: { header?: Record<string, unknown>; events?: HistoryEvent[]; report?: Report; findings?: string[] } = {}): string {
  const iso = (t: number) => new Date(t).toISOString();
  const ops: HistoryEvent[] = checker.writes.map((w) => ({
    at: w.startedAt,
    type: 'op',
    op: w.op,
    id: w.id,
    seq: w.seq,
    node: w.node,
    outcome: w.outcome,
    ...(w.status !== undefined ? { status: w.status } : {}),
    attempts: w.attempts,
    ms: w.endedAt ? w.endedAt - w.startedAt : null,
    ...(w.error ? { error: w.error } : {}),
    ...(w.expect.deleted ? { expect: 'deleted' } : { expect: { ...w.expect.fields, ...(w.expect.archived !== undefined ? { archived: w.expect.archived } : {}), ...(w.expect.links ? { links: w.expect.links } : {}) } }),
  }));
  const body = [...(opts.events ?? []), ...ops].sort((a, b) => a.at - b.at);
  const lines = [
    { t: iso(body[0]?.at ?? Date.now()), type: 'run', scenario: checker.scenario, ...opts.header },
    ...body.map(({ at, ...rest }) => ({ t: iso(at), ...rest })),
    ...(opts.report ? [{ t: iso(Date.now()), type: 'report', ...opts.report, nodes: opts.report.nodes.map((n) => ({ ...n, lost: n.lost.slice(0, 50), lostCommitted: n.lostCommitted.slice(0, 50) })) }] : []),
    ...(opts.findings ? [{ t: iso(Date.now()), type: 'findings', clean: opts.findings.length === 0, findings: opts.findings }] : []),
  ];
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return file;
}

/** One line per report for the run log (convergence time per fault class). */
export function summarize(report: Report, extra: Record<string, unknown> = {}): string {
  const perNode = Object.fromEntries(report.nodes.map((n) => [n.node, n.convergedMs]));
  const held = Object.fromEntries(report.nodes.map((n) => [n.node, n.heldMs]));
  const ops = Object.fromEntries(ALL_OPS.filter((o) => Object.values(report.byOp[o]).some((n) => n > 0)).map((o) => [o, Object.fromEntries(Object.entries(report.byOp[o]).filter(([, n]) => n > 0))]));
  return `[chaos] ${JSON.stringify({ scenario: report.scenario, converged: report.converged, convergenceMs: report.convergenceMs, perNodeMs: perNode, heldMs: held, attempted: report.attempted, outcomes: report.outcomes, ops, samples: report.samples, sampleErrors: report.sampleErrors, ...extra })}`;
}
