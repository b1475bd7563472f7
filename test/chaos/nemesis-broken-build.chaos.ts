import { describe, expect, it } from 'vitest';
import { nemesisDurationMs, runNemesis } from '../helpers/nemesis/runner.js';

/*
 * Broken-build proof for the nemesis (docs/testing.md): with the pusher moving its
 * delivery cursor before the peer's ack (MEMFED_TEST_FAULT=cursor-before-ack), the
 * nemesis at its default duration must report findings. The run stops as soon as the
 * checker samples the first watermark violation, then heals and verifies as usual.
 */

const DURATION_MS = nemesisDurationMs(180);

describe('nemesis catches a deliberately broken build', () => {
  it('cursor-before-ack: a delivery cursor passes versions its peer never received', async () => {
    const r = await runNemesis({
      name: 'nemesis-cursor-before-ack',
      durationMs: DURATION_MS,
      env: { MEMFED_TEST_FAULT: 'cursor-before-ack', NODE_ENV: 'test' },
      stopOnViolation: true,
      minimums: { acked: 0, samples: 0 },
    });
    console.log(`[nemesis] broken build caught after ${r.violationAtMs} ms; findings: ${r.findings.length}`);
    expect(r.violationAtMs, 'a watermark violation sampled within the default duration').not.toBeNull();
    expect(r.findings.some((f) => f.includes('watermark violation'))).toBe(true);
  }, DURATION_MS + 900_000);
});
