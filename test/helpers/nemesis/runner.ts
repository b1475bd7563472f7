import { randomInt } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sql } from '../../../src/db/client.js';
import { createDatabase } from '../../../src/db/client.js';
import { ChaosCluster, type ChaosNode, type RoleProcess } from '../chaos-cluster.js';
import { SetChecker, problems, summarize, writeHistory, type HistoryEvent, type Minimums, type Op, type Report } from '../checker.js';
import { waitFor } from '../env.js';
import { PrivatePostgres } from '../private-postgres.js';
import { PrivateRedis } from '../private-redis.js';
import { waitHealthy } from '../process.js';
import { kindsNamed, type FaultKind, type Heal, type NemesisContext, type Role } from './kinds.js';
import { describeSchedule, makeSchedule, maxOverlap, type FaultStep } from './schedule.js';

/*
 * The nemesis: a three-node mesh of real processes (each node an `api` and a `worker`
 * process, its own Redis and its own Postgres cluster, every directed link through a
 * FaultProxy), a mixed client workload on every node (W=2 on a and c, W=1 on b) for a
 * configurable duration, and a seeded schedule of overlapping faults injected and healed
 * while it runs. Then everything is healed, every process is running again, and the
 * history checker judges the run. A supervisor restarts any process that dies without
 * the nemesis killing it (and records it: that is a finding).
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ROLES: readonly Role[] = ['api', 'worker'];
/** The nemesis's workload: the checker's mixed burst plus archives, restores and links. */
const NEMESIS_MIX: readonly Op[] = ['create', 'create', 'update', 'bulk', 'update', 'delete', 'create', 'archive', 'update', 'link', 'recreate', 'restore', 'delete', 'link'];

export interface NemesisOptions {
  name: string;
  /** Default: NEMESIS_SEED, else random. */
  seed?: number;
  /** Default: NEMESIS_DURATION_S (seconds), else 180 s. */
  durationMs?: number;
  /** Default: NEMESIS_KINDS (comma-separated names), else every default kind. */
  kinds?: FaultKind[];
  /** Environment for every node process (after the nemesis's defaults). */
  env?: Record<string, string>;
  /** End the run early once the checker has sampled a watermark violation (the broken-build proof). */
  stopOnViolation?: boolean;
  minimums?: Minimums;
  verifyDeadlineMs?: number;
  /**
   * Whether a process exiting without the nemesis killing it (not a failed start) is a
   * finding (default true). When false the exits are still counted, logged and in the
   * history (the CI smoke: see docs/reliability.md, "Known issues").
   */
  exitsAreFindings?: boolean;
  /** Client lanes (default 10). */
  concurrency?: number;
}

export interface Recovery {
  step: number;
  kind: string;
  target: string;
  /** ms from the heal until every delivery cursor from and to the target had passed the feed heads of that moment; null: not within the run. */
  ms: number | null;
}

export interface NemesisResult {
  seed: number;
  durationMs: number;
  schedule: FaultStep[];
  /** Kinds injected (not skipped), with counts. */
  injected: Record<string, number>;
  maxOverlap: number;
  report: Report;
  findings: string[];
  historyFile: string;
  recoveries: Recovery[];
  /** Per kind: count, p50 and max recovery ms. */
  recoveryByKind: Record<string, { n: number; p50: number | null; max: number | null; notRecovered: number }>;
  respawns: number;
  /** Processes that exited without the nemesis killing them, after they had started (findings). */
  unplannedExits: Array<{ node: string; role: Role; process: string; exit: string }>;
  /** Processes that failed to start (a fault hit them while starting) and exited: restarted, not findings. */
  startFailures: Array<{ node: string; role: Role; process: string; reason: string }>;
  /** ms after the start at which the first watermark violation was sampled (stopOnViolation). */
  violationAtMs: number | null;
  /** The replay line printed on failure. */
  replay: string;
}

export function nemesisSeed(explicit?: number): number {
  if (explicit !== undefined) return explicit;
  const env = process.env.NEMESIS_SEED;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`NEMESIS_SEED must be an integer in [0, 2^32): ${env}`);
    return n;
  }
  return randomInt(1, 0x7fffffff);
}

export function nemesisDurationMs(fallbackS: number): number {
  const env = process.env.NEMESIS_DURATION_S;
  if (env === undefined || env === '') return fallbackS * 1000;
  const n = Number(env);
  if (!(n >= 10)) throw new Error(`NEMESIS_DURATION_S must be a number of seconds >= 10: ${env}`);
  return Math.round(n * 1000);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Pos {
  txid: bigint;
  seq: bigint;
}
const geq = (a: Pos, b: Pos) => a.txid > b.txid || (a.txid === b.txid && a.seq >= b.seq);
async function feedHead(sql: Sql): Promise<Pos> {
  const rows = await sql<Array<{ t: string; s: string }>>`SELECT txid::text AS t, seq::text AS s FROM change_feed ORDER BY txid DESC, seq DESC LIMIT 1`;
  return rows[0] ? { txid: BigInt(rows[0].t), seq: BigInt(rows[0].s) } : { txid: 0n, seq: 0n };
}
async function cursorOf(sql: Sql, peer: string): Promise<Pos> {
  const rows = await sql<Array<{ t: string; s: string }>>`SELECT txid::text AS t, seq::text AS s FROM peer_cursors WHERE peer_id = ${peer}`;
  return rows[0] ? { txid: BigInt(rows[0].t), seq: BigInt(rows[0].s) } : { txid: 0n, seq: 0n };
}

function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export async function runNemesis(opts: NemesisOptions): Promise<NemesisResult> {
  const seed = nemesisSeed(opts.seed);
  const durationMs = opts.durationMs ?? nemesisDurationMs(180);
  const kinds = opts.kinds ?? kindsNamed(process.env.NEMESIS_KINDS);
  const nodeIds = ['a', 'b', 'c'];
  const schedule = makeSchedule({ seed, durationMs, nodes: nodeIds, kinds });
  const replay = `NEMESIS_SEED=${seed} NEMESIS_DURATION_S=${durationMs / 1000}${opts.kinds || process.env.NEMESIS_KINDS ? ` NEMESIS_KINDS=${kinds.map((k) => k.name).join(',')}` : ''}`;
  const injected: Record<string, number> = {};
  for (const s of schedule) injected[s.kind] = (injected[s.kind] ?? 0) + 1;
  console.log(`[nemesis] ${opts.name}: seed=${seed} duration=${durationMs / 1000}s steps=${schedule.length} maxOverlap=${maxOverlap(schedule)} kinds=${JSON.stringify(injected)}\n[nemesis] replay: ${replay}\n${describeSchedule(schedule)}`);

  const events: HistoryEvent[] = [];
  const event = (type: string, fields: Record<string, unknown>) => events.push({ at: Date.now(), type, ...fields });
  const harness: string[] = [];

  const redis = new Map<string, PrivateRedis>();
  const pgs = new Map<string, PrivatePostgres>();
  let cluster: ChaosCluster | undefined;
  let supervisor: NodeJS.Timeout | undefined;
  try {
    for (const id of nodeIds) {
      redis.set(id, await new PrivateRedis().start());
      pgs.set(id, await new PrivatePostgres().start());
    }
    const specs = [];
    for (const id of nodeIds) {
      const url = await pgs.get(id)!.createMigratedDatabase('memfed');
      const database = createDatabase(url, { max: 3 });
      specs.push({
        id,
        split: true,
        redisUrl: redis.get(id)!.url,
        db: { name: 'memfed', url, database, drop: () => database.close() },
        env: { FED_QUORUM_W: id === 'b' ? '1' : '2' },
      });
    }
    cluster = await ChaosCluster.create({
      nodes: specs,
      mode: 'process',
      seed,
      env: {
        FED_ACK_TIMEOUT_MS: '4000',
        FED_REQUEST_TIMEOUT_MS: '2000',
        // A killed worker's active jobs are recovered as stalled in seconds.
        JOB_LOCK_MS: '5000',
        CATCHUP_INTERVAL_MS: '2000',
        ...opts.env,
      },
    });
    const c = cluster;
    const checker = new SetChecker(opts.name, c.views());

    // Supervisor: what a process manager does. A role the nemesis holds down stays down.
    const held = new Set<string>();
    const planned = new WeakSet<RoleProcess>();
    const seen = new WeakSet<RoleProcess>();
    const starting = new Set<string>();
    const nodeEnv = new Map<string, Record<string, string>>();
    const unplannedExits: NemesisResult['unplannedExits'] = [];
    const startFailures: NemesisResult['startFailures'] = [];
    let respawns = 0;
    const startRole = (node: ChaosNode, role: Role) => {
      const key = `${node.id}:${role}`;
      if (starting.has(key) || node.running(role).length > 0) return;
      starting.add(key);
      respawns++;
      node
        .spawn(role, nodeEnv.get(node.id) ?? {}, { wait: false })
        .then((rp) => event('start', { node: node.id, role, process: rp.name }))
        .catch((err) => event('start-failed', { node: node.id, role, error: String(err) }))
        .finally(() => starting.delete(key));
    };
    const supervise = () => {
      for (const node of c.nodes) {
        for (const role of ROLES) {
          const last = node.procs.filter((p) => p.role === role).at(-1);
          if (last && !seen.has(last) && (last.proc.proc.exitCode !== null || last.proc.proc.signalCode !== null)) {
            seen.add(last);
            if (!planned.has(last)) {
              const exit = String(last.proc.proc.exitCode ?? last.proc.proc.signalCode);
              const rp = last;
              let recorded = false;
              const record = () => {
                if (recorded) return;
                recorded = true;
                const out = rp.proc.output();
                // A start that failed says so (one line, `memfed: <role> failed to start: <reason>`) and
                // exits by design, for the supervisor to retry; any other exit is a finding.
                const failedStart = /memfed: \w+ failed to start: (.*)/.exec(out);
                if (failedStart) startFailures.push({ node: node.id, role, process: rp.name, reason: failedStart[1]!.slice(0, 300) });
                else unplannedExits.push({ node: node.id, role, process: rp.name, exit });
                // What explains an exit: plain stderr lines and error/fatal log lines, then the tail.
                const telling = out.split('\n').filter((l) => l.trim() && (!l.startsWith('{') || /"level":(5|6)0/.test(l))).slice(-20).map((l) => l.slice(0, 1500));
                event(failedStart ? 'start-failed-exit' : 'unplanned-exit', { node: node.id, role, process: rp.name, exit, telling, tail: out.slice(-3000) });
              };
              // 'exit' can come before the pipes are drained: the last lines (a crash's stack) come with 'close'.
              const t = setTimeout(record, 3000);
              rp.proc.proc.once('close', () => {
                clearTimeout(t);
                record();
              });
            }
          }
          if (!held.has(`${node.id}:${role}`)) startRole(node, role);
        }
      }
    };
    supervisor = setInterval(supervise, 1000);
    supervisor.unref();

    const ctx: NemesisContext = {
      cluster: c,
      redis: (n) => redis.get(n)!,
      pg: (n) => pgs.get(n)!,
      checker,
      async killRole(n, role) {
        const node = c.node(n);
        held.add(`${n}:${role}`);
        while (starting.has(`${n}:${role}`)) await sleep(50);
        const live = node.running(role);
        for (const rp of live) {
          planned.add(rp);
          await node.kill(rp);
        }
        return live.length;
      },
      release(n, role) {
        held.delete(`${n}:${role}`);
        startRole(c.node(n), role);
      },
      freeze(n, role) {
        const live = c.node(n).running(role);
        for (const rp of live) rp.proc.signal('SIGSTOP');
        return () => {
          for (const rp of live) rp.proc.signal('SIGCONT');
        };
      },
      setNodeEnv: (n, env) => nodeEnv.set(n, env),
      event,
    };

    // Recovery after each heal: the target's backlog in and out, as of the heal, delivered.
    let watching = true;
    const recoveries: Recovery[] = [];
    const watchers: Array<Promise<void>> = [];
    const views = new Map(c.nodes.map((n) => [n.id, n.view()]));
    const sqlOf = (id: string) => {
      const v = views.get(id)!;
      if (v.kind !== 'memfed') throw new Error('memfed view expected');
      return v.sql;
    };
    /** Whether the target's backlog as of the heal (`heads`) is delivered both ways; the positions when not. */
    const recovered = async (t: string, heads: Map<string, Pos>): Promise<string | null> => {
      const behind: string[] = [];
      for (const p of nodeIds.filter((n) => n !== t)) {
        const out = await cursorOf(sqlOf(t), p);
        const inn = await cursorOf(sqlOf(p), t);
        if (!geq(out, heads.get(t)!)) behind.push(`${t}->${p} at (${out.txid},${out.seq}) < (${heads.get(t)!.txid},${heads.get(t)!.seq})`);
        if (!geq(inn, heads.get(p)!)) behind.push(`${p}->${t} at (${inn.txid},${inn.seq}) < (${heads.get(p)!.txid},${heads.get(p)!.seq})`);
      }
      return behind.length ? behind.join('; ') : null;
    };
    const watchRecovery = (step: FaultStep, healedAt: number) => {
      const rec: Recovery = { step: step.index, kind: step.kind, target: step.target, ms: null };
      recoveries.push(rec);
      watchers.push(
        (async () => {
          let heads: Map<string, Pos> | null = null;
          let last = '';
          // One more look after the run ends, so a recovery in the last poll interval counts.
          for (let final = false; ; final = !watching) {
            try {
              heads ??= new Map(await Promise.all(nodeIds.map(async (n) => [n, await feedHead(sqlOf(n))] as const)));
              const behind = await recovered(step.target, heads);
              if (behind === null) {
                rec.ms = Date.now() - healedAt;
                return;
              }
              last = behind;
            } catch (err) {
              // A database down under another fault: look again.
              last = String(err);
            }
            if (final) {
              event('not-recovered', { step: step.index, kind: step.kind, target: step.target, last });
              return;
            }
            await sleep(300);
          }
        })(),
      );
    };

    checker.startSampling();
    let stopping = false;
    let violationAtMs: number | null = null;
    const t0 = Date.now();
    const stopWatch = opts.stopOnViolation
      ? setInterval(() => {
          if (!stopping && checker.violationCount > 0) {
            violationAtMs = Date.now() - t0;
            stopping = true;
            event('stop', { reason: 'watermark violation sampled', atMs: violationAtMs });
          }
        }, 200)
      : undefined;
    const until = async (ms: number) => {
      while (!stopping && Date.now() < t0 + ms) await sleep(Math.min(200, Math.max(1, t0 + ms - Date.now())));
    };
    event('workload-start', { seed, durationMs });
    const workload = checker.burst(c.nodes, 10_000_000, { concurrency: opts.concurrency ?? 10, spacingMs: 20, timeoutMs: 8000, retries: 2, maxMs: durationMs, mix: NEMESIS_MIX, stop: () => stopping });
    const runStep = async (step: FaultStep) => {
      await until(step.at);
      if (stopping) return;
      const kind = kinds.find((k) => k.name === step.kind)!;
      let heal: Heal;
      try {
        event('inject', { step: step.index, kind: step.kind, target: step.target, params: step.params, plannedAtMs: step.at, atMs: Date.now() - t0 });
        heal = await kind.inject(ctx, step);
      } catch (err) {
        harness.push(`nemesis step #${step.index} ${step.kind} ${step.target}: inject failed: ${String(err)}`);
        event('inject-failed', { step: step.index, error: String(err) });
        return;
      }
      await until(step.until);
      try {
        await heal();
        const at = Date.now();
        event('heal', { step: step.index, kind: step.kind, target: step.target, atMs: at - t0 });
        watchRecovery(step, at);
      } catch (err) {
        harness.push(`nemesis step #${step.index} ${step.kind} ${step.target}: heal failed: ${String(err)}`);
        event('heal-failed', { step: step.index, error: String(err) });
      }
    };
    await Promise.all(schedule.map(runStep));
    if (stopWatch) clearInterval(stopWatch);
    stopping = true;
    await workload;
    event('workload-end', { ms: Date.now() - t0 });

    // Everything healed (every step healed itself); every process of every node up and ready.
    supervise();
    for (const n of c.nodes) {
      await waitFor(async () => {
        supervise();
        return ROLES.every((r) => n.running(r).length > 0) && starting.size === 0;
      }, { timeoutMs: 60_000, what: `${n.id}'s processes running` });
      await waitHealthy(n.url, 120_000);
      for (const w of n.running('worker')) await waitHealthy(`http://127.0.0.1:${w.opsPort}`, 120_000);
    }
    checker.markHealed();
    event('healed', { ms: Date.now() - t0 });

    const report = await checker.verify({ deadlineMs: opts.verifyDeadlineMs ?? 240_000 });
    supervise();
    watching = false;
    await Promise.all(watchers);
    clearInterval(supervisor);
    // Exits noticed last are classified once their output is complete (see record()).
    await sleep(3500);
    supervisor = undefined;

    const findings = [
      ...problems(report, opts.minimums ?? { acked: 100, samples: 20 }),
      ...harness,
      ...(opts.exitsAreFindings === false ? [] : unplannedExits.map((u) => `${u.node}: ${u.process} exited (${u.exit}) without the nemesis killing it`)),
    ];
    if (opts.exitsAreFindings === false && unplannedExits.length > 0) console.log(`[nemesis] NOTE: ${unplannedExits.length} process(es) exited without the nemesis killing them (not counted as findings here): ${unplannedExits.map((u) => `${u.process} (${u.exit})`).join(', ')}; their last lines are in the history file`);
    const recoveryByKind: NemesisResult['recoveryByKind'] = {};
    for (const k of new Set(recoveries.map((r) => r.kind))) {
      const rs = recoveries.filter((r) => r.kind === k);
      const ms = rs.map((r) => r.ms).filter((x): x is number => x !== null);
      recoveryByKind[k] = { n: rs.length, p50: percentile(ms, 50), max: ms.length ? Math.max(...ms) : null, notRecovered: rs.length - ms.length };
    }
    const stamp = new Date(t0).toISOString().replace(/[:.]/g, '-');
    const historyFile = writeHistory(path.join(process.env.NEMESIS_OUT_DIR ?? path.join(ROOT, '.ci/out/nemesis'), `${opts.name}-seed${seed}-${stamp}.jsonl`), checker, {
      header: { seed, durationMs, replay, kinds: kinds.map((k) => k.name), schedule },
      events,
      report,
      findings,
    });
    const injectedKinds = Object.fromEntries(Object.entries(injected).filter(([k]) => events.some((e) => e.type === 'inject' && e.kind === k)));
    const result: NemesisResult = {
      seed,
      durationMs,
      schedule,
      injected: Object.fromEntries(Object.keys(injectedKinds).map((k) => [k, events.filter((e) => e.type === 'inject' && e.kind === k).length])),
      maxOverlap: maxOverlap(schedule.filter((s) => events.some((e) => e.type === 'inject' && e.step === s.index))),
      report,
      findings,
      historyFile,
      recoveries,
      recoveryByKind,
      respawns,
      unplannedExits,
      startFailures,
      violationAtMs,
      replay,
    };
    console.log(summarize(report, { seed, writes: checker.writes.length, respawns, unplannedExits: unplannedExits.length, startFailures: startFailures.length, samplesSkipped: checker.samplesSkipped, violationAtMs }));
    console.log(`[nemesis] recovery by kind: ${JSON.stringify(recoveryByKind)}`);
    console.log(`[nemesis] history: ${historyFile}`);
    if (findings.length) {
      console.log(`[nemesis] ${opts.name} FAILED. Replay with: ${replay}\n${describeSchedule(schedule)}\n[nemesis] findings:\n  ${findings.slice(0, 40).join('\n  ')}`);
      console.log(c.logs().slice(-20_000));
    }
    return result;
  } catch (err) {
    console.log(`[nemesis] ${opts.name} aborted (seed=${seed}). Replay with: ${replay}\n${describeSchedule(schedule)}`);
    throw err;
  } finally {
    if (supervisor) clearInterval(supervisor);
    await cluster?.destroy();
    for (const r of redis.values()) await r.stop().catch(() => {});
    for (const p of pgs.values()) await p.stop().catch(() => {});
  }
}
