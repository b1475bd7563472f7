import { prng } from '../prng.js';

/*
 * The nemesis's fault schedule: a pure function of (seed, duration, nodes, kinds), so a
 * failing run is replayed exactly by re-running with its seed (NEMESIS_SEED) and
 * duration. Every random choice (when, which kind, which node, how long, with what
 * parameters) is drawn here from one seeded PRNG, in one fixed order; nothing at run
 * time draws from it, so the machine's speed cannot change the schedule.
 */

export type Rng = () => number;

/** A fault's target and parameters, and the resources it holds while on. */
export interface FaultPlan {
  /** The node the fault is aimed at (for a one-way partition, the sending side). */
  target: string;
  params: Record<string, unknown>;
  /**
   * Names of what the fault holds (`proc:a:api`, `redis:a`, `pg:a`, `link:a->b`): two
   * faults holding the same resource are never on at once (they would undo each other).
   */
  resources: string[];
}

/** The planning half of a fault kind (the injecting half is in kinds.ts). */
export interface FaultKindSpec {
  name: string;
  /** How long the fault stays on, ms: [min, max]. */
  holdMs: readonly [number, number];
  plan(rng: Rng, nodes: readonly string[]): FaultPlan;
}

export interface FaultStep extends FaultPlan {
  /** Position in the schedule (0-based). */
  index: number;
  kind: string;
  /** ms after the start of the run. */
  at: number;
  /** ms after the start of the run the fault is healed. */
  until: number;
}

export interface ScheduleOptions {
  seed: number;
  durationMs: number;
  nodes: readonly string[];
  kinds: readonly FaultKindSpec[];
  /** Mean gap between two fault starts, ms (default 2500). */
  meanGapMs?: number;
  /** At most this many faults on at once (default 3). */
  maxConcurrent?: number;
  /** No fault starts later than this before the end, and every fault is healed by the end (default 3000). */
  tailMs?: number;
}

export const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
export const between = (rng: Rng, lo: number, hi: number): number => Math.round(lo + rng() * (hi - lo));

export function makeSchedule(o: ScheduleOptions): FaultStep[] {
  if (o.kinds.length === 0) throw new Error('nemesis: no fault kinds');
  const rng = prng(o.seed);
  const gap = o.meanGapMs ?? 2500;
  const maxOn = o.maxConcurrent ?? 3;
  const tail = o.tailMs ?? 3000;
  const end = o.durationMs - tail;
  const steps: FaultStep[] = [];
  let t = between(rng, 500, gap);
  while (t < end) {
    const kind = pick(rng, o.kinds);
    const plan = kind.plan(rng, o.nodes);
    const until = Math.min(t + between(rng, kind.holdMs[0], kind.holdMs[1]), end);
    const on = steps.filter((s) => s.at < until && s.until > t);
    const clash = on.some((s) => s.resources.some((r) => plan.resources.includes(r)));
    if (!clash && on.length < maxOn && until > t) steps.push({ index: steps.length, kind: kind.name, at: t, until, ...plan });
    t += between(rng, Math.round(gap * 0.3), Math.round(gap * 1.7));
  }
  return steps;
}

/** Most faults on at the same moment. */
export function maxOverlap(steps: readonly FaultStep[]): number {
  let most = 0;
  for (const s of steps) most = Math.max(most, steps.filter((o) => o.at <= s.at && o.until > s.at).length);
  return most;
}

/** One line per step, for the log and for a person replaying a seed. */
export function describeSchedule(steps: readonly FaultStep[]): string {
  return steps.map((s) => `  #${s.index} ${(s.at / 1000).toFixed(1)}s-${(s.until / 1000).toFixed(1)}s ${s.kind} ${s.target}${Object.keys(s.params).length ? ' ' + JSON.stringify(s.params) : ''}`).join('\n');
}
