import { expect } from 'vitest';
import { ALL_OPS } from '../checker.js';
import type { NemesisResult } from './runner.js';

/**
 * What every nemesis run must show: not a quiet run (at least five kinds of fault, several
 * at once), every kind of operation took effect, and the checker found nothing.
 */
export function expectCleanNemesisRun(r: NemesisResult): void {
  expect(Object.keys(r.injected).length, JSON.stringify(r.injected)).toBeGreaterThanOrEqual(5);
  expect(r.maxOverlap).toBeGreaterThanOrEqual(2);
  // Creates, updates, deletes, bulk, re-creates, archives, restores, links.
  for (const op of ALL_OPS) {
    const o = r.report.byOp[op];
    expect(o.acked + o.committed + o.conflict, `${op}: ${JSON.stringify(r.report.byOp)}`).toBeGreaterThan(0);
  }
  expect(r.findings, `seed ${r.seed}: replay with ${r.replay}; history ${r.historyFile}`).toEqual([]);
}
