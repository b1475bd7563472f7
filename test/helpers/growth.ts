/*
 * Resource growth of long runs (the soak): per-process series of RSS and open file
 * descriptors, judged by bounds. Pure functions; test/helpers/proc-sampler.ts collects.
 */

export interface ResourceSample {
  /** ms since the run started */
  t: number;
  rssKb: number;
  fds: number;
}

export interface GrowthBounds {
  /** Least-squares RSS slope over the second half of a series, MB per minute. */
  maxSlopeMbPerMin: number;
  /** Last-window median RSS over the first-window median (after warm-up), percent. */
  maxGrowthPct: number;
  /** Last-window median fd count minus the first-window median. */
  maxFdGrowth: number;
  /** The first samples of a series ignored (start-up, JIT, pools filling), ms. */
  warmupMs: number;
  /** Length of the first and last windows compared, ms. */
  windowMs: number;
  /** Series shorter than this (after warm-up) are reported, not judged, ms. */
  minJudgedMs: number;
}

export const DEFAULT_BOUNDS: GrowthBounds = { maxSlopeMbPerMin: 2, maxGrowthPct: 25, maxFdGrowth: 16, warmupMs: 60_000, windowMs: 60_000, minJudgedMs: 240_000 };

export interface SeriesFigures {
  name: string;
  samples: number;
  spanMs: number;
  rssStartMb: number;
  rssEndMb: number;
  rssMaxMb: number;
  firstWindowMedianMb: number;
  lastWindowMedianMb: number;
  growthPct: number;
  slopeMbPerMin: number;
  fdStart: number;
  fdEnd: number;
  fdMax: number;
  fdGrowth: number;
  judged: boolean;
  problems: string[];
}

const mb = (kb: number) => kb / 1024;
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Least-squares slope of y over x (NaN with fewer than two distinct x). */
export function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

/** Figures of one process's series, and what breaks a bound. */
export function judgeSeries(name: string, samples: ResourceSample[], bounds: GrowthBounds = DEFAULT_BOUNDS): SeriesFigures {
  const s = [...samples].sort((a, b) => a.t - b.t);
  const t0 = s[0]?.t ?? 0;
  const tEnd = s.at(-1)?.t ?? 0;
  const warm = s.filter((x) => x.t - t0 >= bounds.warmupMs);
  const wStart = warm[0]?.t ?? tEnd;
  const judgedSpan = tEnd - wStart;
  const judged = warm.length >= 4 && judgedSpan >= bounds.minJudgedMs;
  const first = warm.filter((x) => x.t - wStart <= bounds.windowMs);
  const last = warm.filter((x) => tEnd - x.t <= bounds.windowMs);
  const half = warm.filter((x) => x.t >= wStart + judgedSpan / 2);
  const fm = median(first.map((x) => mb(x.rssKb)));
  const lm = median(last.map((x) => mb(x.rssKb)));
  const sl = slope(half.map((x) => [x.t / 60_000, mb(x.rssKb)]));
  const fdGrowth = median(last.map((x) => x.fds)) - median(first.map((x) => x.fds));
  const growthPct = ((lm - fm) / fm) * 100;
  const problems: string[] = [];
  if (judged) {
    if (sl > bounds.maxSlopeMbPerMin) problems.push(`${name}: RSS grows ${round(sl)} MB/min over the second half (bound ${bounds.maxSlopeMbPerMin})`);
    if (growthPct > bounds.maxGrowthPct) problems.push(`${name}: RSS last-minute median ${round(lm)} MB is ${round(growthPct, 1)}% above the first minute's ${round(fm)} MB (bound ${bounds.maxGrowthPct}%)`);
    if (fdGrowth > bounds.maxFdGrowth) problems.push(`${name}: open fds grew by ${fdGrowth} (median of the last minute over the first; bound ${bounds.maxFdGrowth})`);
  }
  return {
    name,
    samples: s.length,
    spanMs: tEnd - t0,
    rssStartMb: round(mb(s[0]?.rssKb ?? 0)),
    rssEndMb: round(mb(s.at(-1)?.rssKb ?? 0)),
    rssMaxMb: round(mb(Math.max(0, ...s.map((x) => x.rssKb)))),
    firstWindowMedianMb: round(fm),
    lastWindowMedianMb: round(lm),
    growthPct: round(growthPct, 1),
    slopeMbPerMin: round(sl, 3),
    fdStart: s[0]?.fds ?? 0,
    fdEnd: s.at(-1)?.fds ?? 0,
    fdMax: Math.max(0, ...s.map((x) => x.fds)),
    fdGrowth,
    judged,
    problems,
  };
}
