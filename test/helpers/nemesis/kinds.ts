import type { ChaosCluster } from '../chaos-cluster.js';
import type { SetChecker } from '../checker.js';
import type { FaultProxy, ProxyMode } from '../fault-proxy.js';
import type { PrivatePostgres } from '../private-postgres.js';
import type { PrivateRedis } from '../private-redis.js';
import { between, pick, type FaultKindSpec, type FaultStep, type Rng } from './schedule.js';

/*
 * The nemesis's fault kinds. A kind is pluggable: a name, how long it stays on, a
 * plan (target, parameters and held resources, drawn from the schedule's seeded PRNG)
 * and inject(ctx, step), which applies the fault and resolves to its heal. Add a kind by
 * writing one more object and listing it in ALL_KINDS (or pass it to the runner).
 */

export type Role = 'api' | 'worker';
export type Heal = () => Promise<void>;

/** What a fault may act on: the cluster, each node's private Redis and Postgres, the checker. */
export interface NemesisContext {
  cluster: ChaosCluster;
  redis(node: string): PrivateRedis;
  pg(node: string): PrivatePostgres;
  checker: SetChecker;
  /** SIGKILLs every live process of the role and keeps the supervisor from restarting it until release(). */
  killRole(node: string, role: Role): Promise<number>;
  /** Lets the supervisor run the role again and starts it now (with the node's extra env). */
  release(node: string, role: Role): void;
  /** SIGSTOPs every live process of the role; resolves to the SIGCONT. */
  freeze(node: string, role: Role): () => void;
  /** Extra environment of a node's processes from the next start on (clock skew). */
  setNodeEnv(node: string, env: Record<string, string>): void;
  /** A line in the run's history. */
  event(type: string, fields: Record<string, unknown>): void;
}

export interface FaultKind extends FaultKindSpec {
  inject(ctx: NemesisContext, step: FaultStep): Promise<Heal>;
}

const roles = (which: string): Role[] => (which === 'both' ? ['api', 'worker'] : [which as Role]);
const procResources = (node: string, which: string) => roles(which).map((r) => `proc:${node}:${r}`);

function sigkill(which: 'api' | 'worker' | 'both'): FaultKind {
  return {
    name: `sigkill-${which === 'both' ? 'node' : which}`,
    holdMs: [800, 5000],
    plan: (rng, nodes) => {
      const target = pick(rng, nodes);
      return { target, params: {}, resources: procResources(target, which) };
    },
    async inject(ctx, step) {
      let killed = 0;
      for (const r of roles(which)) killed += await ctx.killRole(step.target, r);
      ctx.event('detail', { step: step.index, killed });
      return async () => {
        for (const r of roles(which)) ctx.release(step.target, r);
      };
    },
  };
}

function sigstop(which: 'api' | 'worker' | 'both'): FaultKind {
  return {
    name: `sigstop-${which === 'both' ? 'node' : which}`,
    // Past the job lock (JOB_LOCK_MS=5000) at times: a frozen worker's job is taken over.
    holdMs: [1000, 9000],
    plan: (rng, nodes) => {
      const target = pick(rng, nodes);
      return { target, params: {}, resources: procResources(target, which) };
    },
    async inject(ctx, step) {
      const conts = roles(which).map((r) => ctx.freeze(step.target, r));
      return async () => {
        for (const c of conts) c();
      };
    },
  };
}

const redisRestart: FaultKind = {
  name: 'redis-restart-empty',
  holdMs: [300, 4000],
  plan: (rng, nodes) => {
    const target = pick(rng, nodes);
    return { target, params: {}, resources: [`redis:${target}`] };
  },
  async inject(ctx, step) {
    // No persistence: it comes back with no key at all (queues, schedulers, locks gone).
    await ctx.redis(step.target).stop();
    return async () => {
      await ctx.redis(step.target).start();
    };
  },
};

const pgTerminate: FaultKind = {
  name: 'pg-terminate',
  holdMs: [1000, 5000],
  plan: (rng, nodes) => {
    const target = pick(rng, nodes);
    return { target, params: { everyMs: between(rng, 600, 2000) }, resources: [`pg:${target}`] };
  },
  async inject(ctx, step) {
    const pg = ctx.pg(step.target);
    let total = 0;
    const once = async () => {
      // The node's own cluster; the checker's connections are spared (it observes).
      const { default: postgres } = await import('postgres');
      const admin = postgres(pg.url(), { max: 1, onnotice: () => {}, connect_timeout: 5 });
      try {
        const rows = await admin`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = 'memfed' AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM 'memfed-checker'`;
        total += rows.filter((r) => r.ok).length;
      } catch {
        /* the cluster may be restarting under another fault: nothing to terminate */
      } finally {
        await admin.end({ timeout: 2 }).catch(() => {});
      }
    };
    await once();
    const timer = setInterval(() => void once(), Number(step.params.everyMs));
    return async () => {
      clearInterval(timer);
      ctx.event('detail', { step: step.index, terminatedBackends: total });
    };
  },
};

const pgRestart: FaultKind = {
  name: 'pg-restart',
  holdMs: [500, 5000],
  plan: (rng, nodes) => {
    const target = pick(rng, nodes);
    return { target, params: {}, resources: [`pg:${target}`] };
  },
  async inject(ctx, step) {
    await ctx.checker.pauseSampling(step.target);
    await ctx.pg(step.target).halt();
    return async () => {
      await ctx.pg(step.target).resume();
      // The checker's pool reconnects on its next query; make sure it can look again.
      const sql = ctx.cluster.node(step.target).view();
      if (sql.kind === 'memfed') {
        for (let i = 0; i < 50; i++) {
          if (await sql.sql`SELECT 1`.then(() => true, () => false)) break;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      ctx.checker.resumeSampling(step.target);
    };
  },
};

/** Sets links to a mode; the heal passes them again (and cuts what a blackhole swallowed). */
async function onLinks(links: FaultProxy[], mode: ProxyMode): Promise<Heal> {
  for (const l of links) l.setMode(mode);
  return async () => {
    for (const l of links) {
      l.setMode({ kind: 'pass' });
      if (mode.kind === 'blackhole') l.resetAll();
    }
  };
}

const linksOfResources = (nodes: readonly string[], t: string) => nodes.filter((n) => n !== t).flatMap((n) => [`link:${t}->${n}`, `link:${n}->${t}`]);
const linksIntoResources = (nodes: readonly string[], t: string) => nodes.filter((n) => n !== t).map((n) => `link:${n}->${t}`);

const partition: FaultKind = {
  name: 'partition',
  holdMs: [2000, 10_000],
  plan: (rng, nodes) => {
    const target = pick(rng, nodes);
    return { target, params: {}, resources: linksOfResources(nodes, target) };
  },
  // Clients still reach the node: it takes writes on the minority side of the partition.
  inject: async (ctx, step) => onLinks(ctx.cluster.linksOf(step.target), { kind: 'blackhole' }),
};

const oneWay: FaultKind = {
  name: 'one-way-partition',
  holdMs: [2000, 10_000],
  plan: (rng, nodes) => {
    const target = pick(rng, nodes);
    const to = pick(rng, nodes.filter((n) => n !== target));
    return { target, params: { to }, resources: [`link:${target}->${to}`] };
  },
  // target's requests to `to` (its pushes and its pulls) vanish; `to` still reaches target.
  inject: async (ctx, step) => onLinks([ctx.cluster.link(step.target, String(step.params.to))], { kind: 'blackhole' }),
};

const lossy: FaultKind = {
  name: 'latency-loss',
  holdMs: [2000, 10_000],
  plan: (rng, nodes) => {
    const target = pick(rng, nodes);
    return { target, params: { ms: between(rng, 20, 400), jitterMs: between(rng, 0, 300), loss: between(rng, 5, 40) / 100 }, resources: linksOfResources(nodes, target) };
  },
  inject: async (ctx, step) => onLinks(ctx.cluster.linksOf(step.target), { kind: 'lossy', ms: Number(step.params.ms), jitterMs: Number(step.params.jitterMs), loss: Number(step.params.loss) }),
};

const peerErrors: FaultKind = {
  name: 'peer-5xx',
  holdMs: [2000, 8000],
  plan: (rng, nodes) => {
    const target = pick(rng, nodes);
    return { target, params: { status: pick(rng, [500, 502, 503]), fraction: between(rng, 30, 100) / 100 }, resources: linksIntoResources(nodes, target) };
  },
  inject: async (ctx, step) => onLinks(ctx.cluster.linksInto(step.target), { kind: 'respond', status: Number(step.params.status), fraction: Number(step.params.fraction) }),
};

const peerThrottles: FaultKind = {
  name: 'peer-429',
  holdMs: [2000, 8000],
  plan: (rng, nodes) => {
    const target = pick(rng, nodes);
    return { target, params: { fraction: between(rng, 50, 100) / 100, retryAfterS: between(rng, 0, 2) }, resources: linksIntoResources(nodes, target) };
  },
  inject: async (ctx, step) => onLinks(ctx.cluster.linksInto(step.target), { kind: 'respond', status: 429, fraction: Number(step.params.fraction), retryAfterS: Number(step.params.retryAfterS) }),
};

const peerSlow: FaultKind = {
  name: 'peer-slow',
  holdMs: [2000, 8000],
  plan: (rng, nodes) => {
    const target = pick(rng, nodes);
    // Around the request timeout (FED_REQUEST_TIMEOUT_MS=2000): some answers arrive late, some never in time.
    return { target, params: { ms: between(rng, 500, 2500), jitterMs: between(rng, 0, 1000) }, resources: linksIntoResources(nodes, target) };
  },
  inject: async (ctx, step) => onLinks(ctx.cluster.linksInto(step.target), { kind: 'delay', ms: Number(step.params.ms), jitterMs: Number(step.params.jitterMs) }),
};

/** The test-only clock setting of a node's processes (honoured only when NODE_ENV=test). */
export const CLOCK_SKEW_ENV = 'MEMFED_TEST_CLOCK_SKEW_MS';

/**
 * A node whose clock runs minutes ahead or behind: its processes are restarted with
 * MEMFED_TEST_CLOCK_SKEW_MS, and restarted without it at the heal. Opt-in (NEMESIS_KINDS):
 * it needs a build whose clock reads that setting; without one it is a plain restart.
 */
const clockSkew: FaultKind = {
  name: 'clock-skew',
  holdMs: [5000, 15_000],
  plan: (rng, nodes) => {
    const target = pick(rng, nodes);
    const minutes = between(rng, 1, 5) * (rng() < 0.5 ? -1 : 1);
    return { target, params: { skewMs: minutes * 60_000 }, resources: procResources(target, 'both') };
  },
  async inject(ctx, step) {
    const restart = async (env: Record<string, string>) => {
      for (const r of ['api', 'worker'] as const) await ctx.killRole(step.target, r);
      ctx.setNodeEnv(step.target, env);
      for (const r of ['api', 'worker'] as const) ctx.release(step.target, r);
    };
    await restart({ [CLOCK_SKEW_ENV]: String(step.params.skewMs), NODE_ENV: 'test' });
    return () => restart({});
  },
};

/** Every kind, in a fixed order (the schedule draws by index: reordering changes every seed's schedule). */
export const ALL_KINDS: readonly FaultKind[] = [
  sigkill('api'),
  sigkill('worker'),
  sigkill('both'),
  sigstop('api'),
  sigstop('worker'),
  sigstop('both'),
  redisRestart,
  pgTerminate,
  pgRestart,
  partition,
  oneWay,
  lossy,
  peerErrors,
  peerThrottles,
  peerSlow,
  clockSkew,
];

/** The default set: everything but the opt-in kinds. */
export const DEFAULT_KINDS: readonly FaultKind[] = ALL_KINDS.filter((k) => k.name !== 'clock-skew');

/** Kinds by name (NEMESIS_KINDS=a,b,c), or the default set. */
export function kindsNamed(list: string | undefined): FaultKind[] {
  if (!list?.trim()) return [...DEFAULT_KINDS];
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !ALL_KINDS.some((k) => k.name === n));
  if (unknown.length) throw new Error(`NEMESIS_KINDS: unknown kind(s) ${unknown.join(', ')} (known: ${ALL_KINDS.map((k) => k.name).join(', ')})`);
  return ALL_KINDS.filter((k) => names.includes(k.name));
}

export type { Rng };
