import { describe, expect, it } from 'vitest';
import { clockSkewMs, now, parseTestClockSkew } from '../../src/clock.js';

describe('MEMFED_TEST_CLOCK_SKEW_MS (the test-only clock offset)', () => {
  it('is refused outside NODE_ENV=test, so production cannot run on a shifted clock by accident', () => {
    expect(() => parseTestClockSkew('180000', 'production')).toThrow(/test-only/);
    expect(() => parseTestClockSkew('-1', undefined)).toThrow(/test-only/);
    expect(() => parseTestClockSkew('0', 'development')).toThrow(/test-only/);
  });

  it('refuses a value that is not a signed integer of milliseconds instead of ignoring it', () => {
    for (const bad of ['3m', '1.5', '+-4', '1e6', 'ahead']) expect(() => parseTestClockSkew(bad, 'test')).toThrow(/signed integer/);
  });

  it('parses signed offsets under NODE_ENV=test, and is 0 when unset or empty anywhere', () => {
    expect(parseTestClockSkew('180000', 'test')).toBe(180_000);
    expect(parseTestClockSkew(' -180000 ', 'test')).toBe(-180_000);
    expect(parseTestClockSkew('+5', 'test')).toBe(5);
    expect(parseTestClockSkew(undefined, 'production')).toBe(0);
    expect(parseTestClockSkew('', 'production')).toBe(0);
  });

  it.skipIf(Boolean(process.env.MEMFED_TEST_CLOCK_SKEW_MS))('leaves the clock alone in an ordinary test run', () => {
    expect(clockSkewMs()).toBe(0);
    const before = Date.now();
    const t = now();
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
  });
});
