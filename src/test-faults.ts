/*
 * Deliberately broken builds, for proving that the test suite catches real bugs.
 * TEST-ONLY: never set MEMFED_TEST_FAULT outside a test run.
 *
 * MEMFED_TEST_FAULT is a comma-separated list of fault names, read once (src/config.ts,
 * testFaultEnv) and interpreted here only.
 * It is honoured only when NODE_ENV=test (vitest sets it); in any other environment a
 * non-empty value stops the process at start-up, so a production node can never run with
 * a fault on by accident. An unknown name is refused too (a typo would make the proof
 * vacuous). How to run the proof: docs/testing.md, "Broken-build proof".
 *
 *   drop-update-every-10  the receiver silently skips every tenth replicated update
 *                         (a memory with version > 1) it would apply (store/replica.ts);
 *                         the push still answers as if the row had been taken
 *   cursor-before-ack     the pusher moves the delivery cursor past a batch before the
 *                         peer acknowledged it, so a failed push loses the batch
 *                         (federation/pusher.ts)
 */

import { testFaultEnv } from './config.js';

export const TEST_FAULTS = ['drop-update-every-10', 'cursor-before-ack'] as const;
export type TestFault = (typeof TEST_FAULTS)[number];

function parse(raw: string | undefined, nodeEnv: string | undefined): ReadonlySet<TestFault> {
  const names = (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) return new Set();
  if (nodeEnv !== 'test') throw new Error(`MEMFED_TEST_FAULT is a test-only switch and is refused unless NODE_ENV=test (got NODE_ENV=${nodeEnv ?? 'unset'})`);
  const unknown = names.filter((n) => !(TEST_FAULTS as readonly string[]).includes(n));
  if (unknown.length > 0) throw new Error(`MEMFED_TEST_FAULT: unknown fault(s) ${unknown.join(', ')} (known: ${TEST_FAULTS.join(', ')})`);
  return new Set(names as TestFault[]);
}

const active = parse(testFaultEnv.faults, testFaultEnv.nodeEnv);
if (active.size > 0) process.stderr.write(`memfed: TEST FAULTS ACTIVE (deliberately broken build): ${[...active].join(', ')}\n`);

let updatesSeen = 0;

/** Whether a test fault is on (always false outside NODE_ENV=test). */
export function testFault(name: TestFault): boolean {
  return active.has(name);
}

/**
 * drop-update-every-10: the rows the receiver will really apply. Identity (and cheap)
 * when the fault is off.
 */
export function dropEveryTenthUpdate<T extends { version: number }>(rows: T[]): T[] {
  if (!active.has('drop-update-every-10')) return rows;
  return rows.filter((m) => m.version <= 1 || ++updatesSeen % 10 !== 0);
}

/** Exposed for the unit test of the guard only. */
export const parseTestFaults = parse;
