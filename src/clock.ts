/**
 * The wall clock memfed's federation-relevant decisions read: LWW timestamps of new writes
 * (created_at, updated_at, deleted_at, archive and link times), expires_at from a TTL, the
 * issue time of memfed nonces and the receiver's +-FED_CLOCK_SKEW_MS window for them, the
 * future-timestamp refusal and the since-watermark horizon, audit event and checkpoint
 * times, the status report's generated_at and the catch-up lag gauge.
 *
 * Pure durations stay on Date.now() / timers where they are (request budgets, elapsed
 * times, retry delays, BullMQ delays, cache ages, watchdog timing): they compare two
 * readings of the same clock, so an offset cancels out, and BullMQ's delays are scheduled
 * against Redis's own view of time anyway. Operational bookkeeping that Postgres stamps
 * itself (`now()` in SQL: DLQ leases, watermark last_success_at, peer updated_at) follows
 * the node's database clock, not this one.
 *
 * TEST-ONLY: MEMFED_TEST_CLOCK_SKEW_MS (signed ms) shifts this clock, to run a node minutes
 * ahead or behind in one machine. Read once in src/config.ts (testClockEnv) and honoured
 * only when NODE_ENV=test, exactly like MEMFED_TEST_FAULT: any non-empty value elsewhere
 * stops the process at start-up.
 */
import { testClockEnv } from './config.js';

export function parseTestClockSkew(raw: string | undefined, nodeEnv: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return 0;
  if (nodeEnv !== 'test') throw new Error(`MEMFED_TEST_CLOCK_SKEW_MS is a test-only switch and is refused unless NODE_ENV=test (got NODE_ENV=${nodeEnv ?? 'unset'})`);
  const v = raw.trim();
  if (!/^[+-]?\d{1,13}$/.test(v)) throw new Error(`MEMFED_TEST_CLOCK_SKEW_MS: not a signed integer of milliseconds: ${JSON.stringify(raw)}`);
  return Number(v);
}

const skewMs = parseTestClockSkew(testClockEnv.skewMs, testClockEnv.nodeEnv);
if (skewMs !== 0) process.stderr.write(`memfed: TEST CLOCK SKEW ACTIVE: this process's wall clock runs ${skewMs} ms ${skewMs > 0 ? 'ahead' : 'behind'}\n`);

/** Wall-clock time in epoch milliseconds (shifted only by the test-only skew). */
export function now(): number {
  return Date.now() + skewMs;
}

/** The offset in effect (0 outside tests). */
export const clockSkewMs = (): number => skewMs;
