import os from 'node:os';
import { auditSection } from './audit.js';
import { catchupSection } from './catchup.js';
import type { BenchContext, Section } from './context.js';
import { dlqSection } from './dlq.js';
import { enqueueSection } from './enqueue.js';
import { growthSection } from './growth.js';
import { repairSection } from './repair.js';
import { httpSection, soakSection } from './http.js';
import { meshSection } from './mesh.js';
import { processesSection } from './processes.js';
import { quorumSection } from './quorum.js';
import { BenchInfra } from './infra.js';
import { replicationSection } from './replication.js';
import { Report } from './report.js';
import { signingSection } from './signing.js';
import { now } from './stats.js';
import { storeSection } from './store.js';

/*
 * memfed benchmark: `npm run bench` (~5 min) or `BENCH_QUICK=1 npm run bench` (~75 s; without
 * the quorum and processes sections unless named in BENCH_ONLY).
 * Every figure is compared with a baseline measured in the same run (ratios, never
 * absolute pass/fail). BENCH_ONLY=signing,store runs a subset (BENCH_ONLY=soak: the 5-minute
 * RSS soak, run only when named; BENCH_ONLY=mesh adds the 9-node mesh); BENCH_OUT=path writes the
 * JSON results there instead of after a `BENCH_JSON` line on stdout; BENCH_CPU_PROF_DIR=dir
 * has every node process the bench starts write a CPU profile there.
 */

const SECTIONS: Array<[string, Section]> = [
  ['signing', signingSection],
  ['enqueue', enqueueSection],
  ['store', storeSection],
  ['http', httpSection],
  ['quorum', quorumSection],
  ['replication', replicationSection],
  ['dlq', dlqSection],
  ['catchup', catchupSection],
  ['audit', auditSection],
  ['processes', processesSection],
  ['mesh', meshSection],
];
// Left out of a quick run unless named in BENCH_ONLY (each starts several node processes).
const FULL_ONLY = new Set(['quorum', 'processes']);
// Run only when named in BENCH_ONLY (minutes long).
const OPT_IN: Array<[string, Section]> = [
  ['soak', soakSection],
  ['growth', growthSection],
  ['repair', repairSection],
];

async function main(): Promise<number> {
  const quick = process.env.BENCH_QUICK === '1';
  const only = (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const all = [...SECTIONS, ...OPT_IN];
  const unknown = only.filter((s) => !all.some(([name]) => name === s));
  if (unknown.length) throw new Error(`BENCH_ONLY: unknown section(s) ${unknown.join(', ')}; known: ${all.map(([n]) => n).join(', ')}`);
  const infra = new BenchInfra();
  const report = new Report();
  const ctx: BenchContext = { quick, only, infra, report, shared: {}, size: (full, q) => (quick ? q : full) };
  const started = now();
  const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
  const loadAtStart = load();
  process.stdout.write(`memfed bench (${quick ? 'quick' : 'full'}), node ${process.version}, ${os.cpus().length} cpus, pid ${process.pid}, load ${loadAtStart}\n`);

  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    process.stdout.write('\ninterrupted: cleaning up\n');
    void infra.cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    for (const [name, run] of all) {
      if (only.length ? !only.includes(name) : OPT_IN.some(([n]) => n === name) || (quick && FULL_ONLY.has(name))) continue;
      if (interrupted) break;
      report.begin(name);
      const t = now();
      try {
        await run(ctx);
        report.end((now() - t) / 1000);
      } catch (err) {
        report.end((now() - t) / 1000, err);
      }
      for (const p of await infra.endSection()) process.stdout.write(`cleanup problem: ${p}\n`);
    }
  } finally {
    const problems = await infra.cleanup();
    for (const p of problems) process.stdout.write(`cleanup problem: ${p}\n`);
  }
  const seconds = (now() - started) / 1000;
  const loadAtEnd = load();
  process.stdout.write(`\n== summary (${quick ? 'quick' : 'full'} run, ${seconds.toFixed(0)} s, load ${loadAtStart} -> ${loadAtEnd}; ratio = memfed / baseline) ==\n${report.summary()}\n`);
  report.emitJson({ quick, node: process.version, cpus: os.cpus().length, seconds, loadAtStart, loadAtEnd, at: new Date().toISOString() }, process.env.BENCH_OUT);
  return report.sections.every((s) => s.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
