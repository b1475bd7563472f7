import { randomBytes } from 'node:crypto';
import type { Sql } from '../../src/db/client.js';
import type { UpstreamReceiver } from './upstream-peer.js';

/*
 * The set checker of docs/invariants.md, Testing tiers ("what nothing lost means").
 *
 * The client records every write it attempts (creates with client-chosen ids, one node
 * each) and how each ended:
 *   acked      201: committed and acknowledged by the quorum.
 *   committed  503 quorum_not_met (docs/wire.md: the commit stands), or a 409 on a retry of
 *              an id this client wrote: committed locally, not acknowledged by a quorum.
 *   unknown    timeout, reset, 5xx: may or may not have committed.
 *   refused    any other 4xx: must not exist anywhere.
 *
 * After healing, verify() polls every node (bounded deadline) until
 *   - it holds every acked and committed id, and every attempted id that any node holds
 *     (all-or-nothing: a write that committed somewhere must reach everyone), and
 *   - (memfed nodes) every delivery cursor is at its feed head (nothing stuck),
 * then reports, per node:
 *   lost              acked (+ committed) - present                          must be 0
 *   partial           held by some node, missing here                        must be 0
 *   unexpected        present - attempted                                    must be 0
 *   duplicateRows     >1 memories row for one logical id (doc->>'id'), or a row whose
 *                     key differs from its doc id                            must be 0
 *   duplicateApplies  see below                                              must be 0
 *   watermarkViolations                                                     must be 0
 *
 * Duplicate applies, precisely. Every commit appends one change_feed row; a row applied
 * from a peer carries origin_peer; an LWW no-op (the same or an older version arriving
 * again) appends nothing. The checker only creates (one version per id), so on a node X:
 *   local rows  (origin_peer IS NULL)      for id = 1 if X took the client write, else 0
 *   apply rows  (origin_peer IS NOT NULL)  for id = 0 if X took the client write, else <= 1
 * summed over every origin: the same version applied twice (from one peer re-sending
 * after a lost ack, a stalled job re-run, a catch-up pull racing a push, or two peers
 * relaying it) would show as a second row. For an ai-memory-style receiver (no feed)
 * the count is its per-id delivery counter instead (<= 1). This counts applies, not
 * completed jobs: BullMQ is at-least-once and a stalled job runs twice while reporting
 * one completion.
 *
 * Watermark violations:
 *   - a delivery cursor (peer_cursors) or a catch-up watermark (peer_watermarks.cursor)
 *     seen going backwards between two samples (sampled during the whole run);
 *   - a delivery cursor beyond its own node's feed head, or a catch-up watermark beyond
 *     the pulled peer's feed head (a position that never existed);
 *   - a delivery cursor X->P past a change (not originated by P) whose memory P does
 *     not hold and that is not in X's DLQ for P (the cursor skipped an undelivered row).
 */

export type Outcome = 'acked' | 'committed' | 'unknown' | 'refused';

export interface WriteRecord {
  id: string;
  node: string;
  outcome: Outcome;
  status?: number;
  error?: string;
  attempts: number;
  startedAt: number;
  endedAt: number;
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
  present: number;
  lost: string[];
  lostCommitted: string[];
  partial: string[];
  unexpected: string[];
  duplicateRows: Array<{ id: string; rows: number }>;
  duplicateApplies: Array<{ id: string; applies: number; allowed: number; byOrigin: Record<string, number> }>;
  watermarkViolations: string[];
  stuckCursors: string[];
  /** ms from the reference point (heal, else verify start) until this node first held every required id. */
  heldMs: number | null;
  /** ... and also had every delivery cursor at its feed head (fully converged). */
  convergedMs: number | null;
}

export interface Report {
  scenario: string;
  attempted: number;
  outcomes: Record<Outcome, number>;
  mustConverge: number;
  converged: boolean;
  /** ms from the heal (or verify start when never marked) until every node converged. */
  convergenceMs: number | null;
  nodes: NodeReport[];
  samples: number;
  sampleErrors: number;
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

export class SetChecker {
  readonly writes = new Map<string, WriteRecord>();
  private readonly views = new Map<string, NodeView>();
  private readonly lastCursor = new Map<string, Pos>();
  private readonly lastWatermark = new Map<string, Pos>();
  private readonly violations = new Map<string, string[]>();
  private sampler: NodeJS.Timeout | null = null;
  private sampling = false;
  private samples = 0;
  private sampleErrors = 0;
  private seq = 0;
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

  /** Records a write the test made another way (e.g. a crash hook killed the API). */
  record(rec: Omit<WriteRecord, 'attempts' | 'startedAt' | 'endedAt'> & Partial<WriteRecord>): void {
    const now = Date.now();
    this.writes.set(rec.id, { attempts: 1, startedAt: now, endedAt: now, ...rec });
  }

  /** Upgrades an unknown write the test has proven committed (seen in the node's table). */
  markCommitted(id: string): void {
    const w = this.writes.get(id);
    if (w && (w.outcome === 'unknown' || w.outcome === 'refused')) w.outcome = 'committed';
  }

  /**
   * One create with a client-chosen id. `retries` re-sends an unknown outcome with the
   * same id (idempotent: 409 means an earlier attempt committed).
   */
  async write(target: Target, opts: { timeoutMs?: number; retries?: number; body?: Record<string, unknown>; id?: string } = {}): Promise<WriteRecord> {
    const id = opts.id ?? this.nextId();
    const rec: WriteRecord = { id, node: target.id, outcome: 'unknown', attempts: 0, startedAt: Date.now(), endedAt: 0 };
    this.writes.set(id, rec);
    const retries = opts.retries ?? 0;
    for (let attempt = 0; attempt <= retries; attempt++) {
      rec.attempts++;
      try {
        const res = await fetch(`${target.url}/api/v1/memories`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id, title: `chaos ${this.scenario}`, content: `write ${id}`, tags: ['chaos'], ...opts.body }),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
        });
        const text = await res.text();
        rec.status = res.status;
        if (res.status === 201) rec.outcome = 'acked';
        else if (res.status === 503 && text.includes('quorum_not_met')) rec.outcome = 'committed';
        else if (res.status === 409 && attempt > 0) rec.outcome = 'committed';
        else if (res.status >= 400 && res.status < 500) {
          rec.outcome = 'refused';
          rec.error = text.slice(0, 300);
        } else {
          rec.outcome = 'unknown';
          rec.error = `HTTP ${res.status} ${text.slice(0, 200)}`;
        }
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

  /**
   * `count` writes spread round-robin over `targets`, at most `concurrency` in flight,
   * optionally `spacingMs` apart per lane; bounded by `maxMs` (writes not started by
   * then are skipped).
   */
  async burst(targets: Target[], count: number, opts: { concurrency?: number; spacingMs?: number; timeoutMs?: number; retries?: number; maxMs?: number } = {}): Promise<WriteRecord[]> {
    const out: WriteRecord[] = [];
    let next = 0;
    const stopAt = Date.now() + (opts.maxMs ?? 120_000);
    const lane = async () => {
      while (next < count && Date.now() < stopAt) {
        const i = next++;
        out.push(await this.write(targets[i % targets.length]!, opts));
        if (opts.spacingMs) await sleep(opts.spacingMs);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, lane));
    return out;
  }

  counts(): Record<Outcome, number> {
    const c: Record<Outcome, number> = { acked: 0, committed: 0, unknown: 0, refused: 0 };
    for (const w of this.writes.values()) c[w.outcome]++;
    return c;
  }

  /** Samples cursors and watermarks every `intervalMs` to catch one going backwards. */
  startSampling(intervalMs = 250): void {
    if (this.sampler) return;
    this.sampler = setInterval(() => {
      if (this.sampling) return;
      this.sampling = true;
      this.sampleOnce()
        .catch(() => this.sampleErrors++)
        .finally(() => (this.sampling = false));
    }, intervalMs);
    // Never the thing that keeps a failed test's process alive.
    this.sampler.unref();
  }

  stopSampling(): void {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
  }

  private async sampleOnce(): Promise<void> {
    for (const v of this.views.values()) {
      if (v.kind !== 'memfed') continue;
      try {
        await this.sampleNode(v);
      } catch {
        this.sampleErrors++;
      }
    }
    this.samples++;
  }

  private async sampleNode(v: Extract<NodeView, { kind: 'memfed' }>): Promise<void> {
    const cursors = await v.sql<Array<{ peer_id: string; t: string; s: string }>>`SELECT peer_id, txid::text AS t, seq::text AS s FROM peer_cursors`;
    for (const c of cursors) {
      const key = `${v.id}->${c.peer_id}`;
      const p = pos(c.t, c.s);
      const prev = this.lastCursor.get(key);
      // Reported once per regression (the new, lower value becomes the reference).
      if (prev && cmp(p, prev) < 0) this.violate(v.id, `delivery cursor ${key} went back from ${show(prev)} to ${show(p)}`);
      if (!prev || cmp(p, prev) !== 0) this.lastCursor.set(key, p);
    }
    const wms = await v.sql<Array<{ peer_id: string; cursor: string | null }>>`SELECT peer_id, cursor FROM peer_watermarks`;
    for (const w of wms) {
      const key = `${v.id}<-${w.peer_id}`;
      const p = decodeWatermark(w.cursor);
      const prev = this.lastWatermark.get(key);
      if (prev && (!p || cmp(p, prev) < 0)) this.violate(v.id, `catch-up watermark ${key} went back from ${show(prev)} to ${p ? show(p) : String(w.cursor)}`);
      if (p && (!prev || cmp(p, prev) !== 0)) this.lastWatermark.set(key, p);
    }
  }

  private violate(node: string, what: string): void {
    const list = this.violations.get(node)!;
    if (!list.includes(what)) list.push(what);
  }

  /** Live ids a node holds now. */
  private async presentOn(v: NodeView): Promise<Set<string>> {
    if (v.kind === 'receiver') return new Set(v.receiver.received.keys());
    const rows = await v.sql<Array<{ id: string }>>`SELECT id FROM memories WHERE deleted_at IS NULL`;
    return new Set(rows.map((r) => r.id));
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
   * Polls until converged or `deadlineMs`, then reports. Never throws on a finding:
   * assert with problems(report).
   */
  async verify(opts: { deadlineMs?: number; intervalMs?: number; requireCaughtUp?: boolean } = {}): Promise<Report> {
    const started = Date.now();
    const ref = this.healedAt ?? started;
    const deadline = started + (opts.deadlineMs ?? 60_000);
    const requireCaughtUp = opts.requireCaughtUp ?? true;
    const attempted = new Set(this.writes.keys());
    const required = new Set([...this.writes.values()].filter((w) => w.outcome === 'acked' || w.outcome === 'committed').map((w) => w.id));
    const convergedAt = new Map<string, number>();
    const heldAt = new Map<string, number>();
    let present = new Map<string, Set<string>>();
    let mustHave = new Set<string>();
    let converged = false;
    let pollErrors = 0;
    for (let round = 0; round < 100_000; round++) {
      try {
        present = new Map();
        for (const v of this.views.values()) present.set(v.id, await this.presentOn(v));
        mustHave = new Set(required);
        for (const s of present.values()) for (const id of s) if (attempted.has(id)) mustHave.add(id);
        let all = true;
        for (const v of this.views.values()) {
          const s = present.get(v.id)!;
          const holds = [...mustHave].every((id) => s.has(id));
          if (holds && !heldAt.has(v.id)) heldAt.set(v.id, Date.now());
          const ok = holds && (!requireCaughtUp || (await this.behind(v)).length === 0);
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
      } catch {
        pollErrors++;
      }
      if (Date.now() > deadline) break;
      await sleep(opts.intervalMs ?? 200);
    }
    const doneAt = converged ? Math.max(...convergedAt.values()) : null;
    // One last sample so the final positions are checked for regressions too.
    await this.sampleOnce().catch(() => this.sampleErrors++);
    this.stopSampling();

    const nodes: NodeReport[] = [];
    for (const v of this.views.values()) nodes.push(await this.nodeReport(v, present.get(v.id) ?? new Set(), mustHave, attempted, heldAt.get(v.id), convergedAt.get(v.id), ref));
    if (pollErrors > 0) this.sampleErrors += pollErrors;
    return {
      scenario: this.scenario,
      attempted: attempted.size,
      outcomes: this.counts(),
      mustConverge: mustHave.size,
      converged,
      convergenceMs: doneAt === null ? null : Math.max(0, doneAt - ref),
      nodes,
      samples: this.samples,
      sampleErrors: this.sampleErrors,
    };
  }

  private async nodeReport(v: NodeView, present: Set<string>, mustHave: Set<string>, attempted: Set<string>, held: number | undefined, at: number | undefined, ref: number): Promise<NodeReport> {
    const acked = [...this.writes.values()].filter((w) => w.outcome === 'acked').map((w) => w.id);
    const committed = [...this.writes.values()].filter((w) => w.outcome === 'committed').map((w) => w.id);
    const refused = new Set([...this.writes.values()].filter((w) => w.outcome === 'refused').map((w) => w.id));
    const r: NodeReport = {
      node: v.id,
      present: present.size,
      lost: acked.filter((id) => !present.has(id)),
      lostCommitted: committed.filter((id) => !present.has(id)),
      partial: [...mustHave].filter((id) => !present.has(id) && !acked.includes(id) && !committed.includes(id)),
      unexpected: [],
      duplicateRows: [],
      duplicateApplies: [],
      watermarkViolations: [...(this.violations.get(v.id) ?? [])],
      stuckCursors: [],
      heldMs: held === undefined ? null : Math.max(0, held - ref),
      convergedMs: at === undefined ? null : Math.max(0, at - ref),
    };
    if (v.kind === 'receiver') {
      r.unexpected = [...v.receiver.received.keys()].filter((id) => !attempted.has(id) || refused.has(id));
      for (const [id, n] of v.receiver.deliveries) if (n > 1) r.duplicateApplies.push({ id, applies: n, allowed: 1, byOrigin: { deliveries: n } });
      return r;
    }
    const sql = v.sql;
    const all = await sql<Array<{ id: string }>>`SELECT id FROM memories`;
    r.unexpected = all.map((x) => x.id).filter((id) => !attempted.has(id) || refused.has(id));
    const dupDocs = await sql<Array<{ id: string; n: number }>>`SELECT doc->>'id' AS id, count(*)::int AS n FROM memories GROUP BY 1 HAVING count(*) > 1`;
    r.duplicateRows.push(...dupDocs.map((d) => ({ id: String(d.id), rows: d.n })));
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
      const writer = this.writes.get(id)?.node;
      const allowedLocal = writer === v.id ? 1 : 0;
      const allowedApplies = writer !== undefined && writer !== v.id ? 1 : 0;
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
        // Cursor read first, the peer's table after: anything at or before it was acked.
        const passed = await sql<Array<{ memory_id: string }>>`
          SELECT DISTINCT f.memory_id FROM change_feed f
          WHERE (f.txid, f.seq) <= (${c.t}::xid8, ${c.s}::bigint) AND f.origin_peer IS DISTINCT FROM ${c.peer_id}
            AND NOT EXISTS (SELECT 1 FROM federation_push_dlq d WHERE d.peer_id = ${c.peer_id} AND d.memory_id = f.memory_id)`;
        const peerHas = await this.allIdsOn(peerView);
        const skipped = passed.map((x) => x.memory_id).filter((id) => !peerHas.has(id));
        if (skipped.length > 0) r.watermarkViolations.push(`delivery cursor ${v.id}->${c.peer_id} passed ${skipped.length} change(s) ${c.peer_id} never received: ${skipped.slice(0, 5).join(', ')}`);
      }
    }
    const wms = await sql<Array<{ peer_id: string; cursor: string | null }>>`SELECT peer_id, cursor FROM peer_watermarks`;
    for (const w of wms) {
      const p = decodeWatermark(w.cursor);
      const peerView = this.views.get(w.peer_id);
      if (!p || !peerView || peerView.kind !== 'memfed') continue;
      const peerHead = await feedMax(peerView.sql);
      if (p.txid === 0n && p.seq === 0n) continue;
      if (!peerHead || cmp(p, peerHead) > 0) r.watermarkViolations.push(`catch-up watermark ${v.id}<-${w.peer_id} ${show(p)} beyond ${w.peer_id}'s feed head ${peerHead ? show(peerHead) : '(empty feed)'}`);
    }
    r.stuckCursors = await this.behind(v);
    return r;
  }

  private async allIdsOn(v: NodeView): Promise<Set<string>> {
    if (v.kind === 'receiver') return new Set([...v.receiver.received.keys(), ...v.receiver.deleted]);
    const rows = await v.sql<Array<{ id: string }>>`SELECT id FROM memories`;
    return new Set(rows.map((r) => r.id));
  }
}

async function feedMax(sql: Sql): Promise<Pos | null> {
  const rows = await sql<Array<{ t: string; s: string }>>`SELECT txid::text AS t, seq::text AS s FROM change_feed ORDER BY txid DESC, seq DESC LIMIT 1`;
  return rows[0] ? pos(rows[0].t, rows[0].s) : null;
}

/** Every finding of a report as a readable line; `[]` means the history is clean. */
export function problems(report: Report): string[] {
  const out: string[] = [];
  if (!report.converged) out.push(`${report.scenario}: did not converge before the deadline (${report.mustConverge} ids required)`);
  if (report.outcomes.refused > 0) out.push(`${report.scenario}: ${report.outcomes.refused} write(s) refused with a 4xx`);
  const few = (ids: string[]) => `${ids.length} [${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}]`;
  for (const n of report.nodes) {
    if (n.lost.length) out.push(`${n.node}: lost acked ${few(n.lost)}`);
    if (n.lostCommitted.length) out.push(`${n.node}: lost committed (503) ${few(n.lostCommitted)}`);
    if (n.partial.length) out.push(`${n.node}: missing ids other nodes hold ${few(n.partial)}`);
    if (n.unexpected.length) out.push(`${n.node}: unexpected ${few(n.unexpected)}`);
    if (n.duplicateRows.length) out.push(`${n.node}: duplicate rows ${JSON.stringify(n.duplicateRows.slice(0, 5))}`);
    if (n.duplicateApplies.length) out.push(`${n.node}: duplicate applies ${n.duplicateApplies.length}: ${JSON.stringify(n.duplicateApplies.slice(0, 5))}`);
    for (const w of n.watermarkViolations.slice(0, 20)) out.push(`${n.node}: watermark violation: ${w}`);
    if (n.watermarkViolations.length > 20) out.push(`${n.node}: ... ${n.watermarkViolations.length - 20} more watermark violations`);
    if (n.stuckCursors.length) out.push(`${n.node}: delivery cursors behind the feed head for ${n.stuckCursors.join(', ')}`);
  }
  return out;
}

/** One line per report for the run log (convergence time per fault class). */
export function summarize(report: Report, extra: Record<string, unknown> = {}): string {
  const perNode = Object.fromEntries(report.nodes.map((n) => [n.node, n.convergedMs]));
  const held = Object.fromEntries(report.nodes.map((n) => [n.node, n.heldMs]));
  return `[chaos] ${JSON.stringify({ scenario: report.scenario, converged: report.converged, convergenceMs: report.convergenceMs, perNodeMs: perNode, heldMs: held, attempted: report.attempted, outcomes: report.outcomes, samples: report.samples, sampleErrors: report.sampleErrors, ...extra })}`;
}
