import { afterEach, describe, expect, it, vi } from 'vitest';
import { normalizeTimestamp, nowMicros, parseTimestamp } from '../../src/memory/time.js';

describe('timestamp input types', () => {
  it('only a string is a timestamp, not an array or object that stringifies to one', () => {
    expect(parseTimestamp(['2024-01-01T00:00:00Z'])).toBeNull();
    expect(normalizeTimestamp({ toString: () => '2024-01-01T00:00:00Z' })).toBeNull();
  });
});

describe('year range after the offset is applied', () => {
  it('a local time in year 0000 that is year 0001 in UTC is still refused', () => {
    expect(parseTimestamp('0000-12-31T23:00:00-02:00')).toBeNull();
  });

  it('refuses instants that fall outside 0001-9999 once in UTC', () => {
    expect(parseTimestamp('9999-12-31T23:00:00-02:00')).toBeNull();
    expect(parseTimestamp('0001-01-01T00:30:00+01:00')).toBeNull();
    expect(normalizeTimestamp('9999-12-31T23:00:00+02:00')).toBe('9999-12-31T21:00:00.000000+00:00');
  });

  it('year 100 is year 100 (only 0-99 need their century put back)', () => {
    expect(normalizeTimestamp('0100-01-01T00:00:00Z')).toBe('0100-01-01T00:00:00.000000+00:00');
    expect(normalizeTimestamp('0099-01-01T00:00:00Z')).toBe('0099-01-01T00:00:00.000000+00:00');
  });
});

describe('nowMicros against a stopped clock', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('is the wall-clock millisecond plus the sub-millisecond part, and still strictly increases when the clock stands still', () => {
    // Far in the future, so it is ahead of every value this process handed out before.
    const ms = 4_000_000_000_000;
    vi.spyOn(Date, 'now').mockReturnValue(ms);
    vi.spyOn(process.hrtime, 'bigint').mockReturnValue(123_456n);
    expect(nowMicros()).toBe(ms * 1000 + 123);
    expect(nowMicros()).toBe(ms * 1000 + 124);
    expect(nowMicros()).toBe(ms * 1000 + 125);
  });
});
