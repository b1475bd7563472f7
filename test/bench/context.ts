import type { BenchInfra } from './infra.js';
import type { Report } from './report.js';

/** What every section gets: mode, shared infrastructure, the report, and figures other sections reuse. */
export interface BenchContext {
  quick: boolean;
  /** The sections named in BENCH_ONLY (empty: the default run). */
  only: string[];
  infra: BenchInfra;
  report: Report;
  /** Figures measured by one section and reused as a baseline by a later one. */
  shared: { rawBatchedRowsPerSec?: number; rawBatchedPgCpuUsPerRow?: number };
  /** `full` normally, `quick` under BENCH_QUICK=1. */
  size<T>(full: T, quick: T): T;
}

export type Section = (ctx: BenchContext) => Promise<void>;
