import { describe, expect, it } from 'vitest';
import { beyondTombstoneGrace, DEFAULT_TIER_TTL_SECS, isExpired, isExpiredAt, lwwTime, tierExpiry } from '../../src/memory/expiry.js';
import { parseTimestamp } from '../../src/memory/time.js';
import { servable } from '../../src/federation/feed-page.js';
import type { StoredMemory } from '../../src/store/memories.js';
import type { Memory } from '../../src/memory/model.js';

const T = '2026-03-01T00:00:00.000000+00:00';
const t = parseTimestamp(T)!;

describe('tier TTLs (upstream: short 6 h, mid 7 days, long never)', () => {
  it('sets expires_at to created_at + the tier TTL, none for long', () => {
    expect(tierExpiry('short', T)).toBe('2026-03-01T06:00:00.000000+00:00');
    expect(tierExpiry('mid', T)).toBe('2026-03-08T00:00:00.000000+00:00');
    expect(tierExpiry('long', T)).toBeUndefined();
    expect(DEFAULT_TIER_TTL_SECS).toEqual({ short: 21_600, mid: 604_800, long: null });
  });
  it('follows configured TTLs (SHORT_TTL_SECS, MID_TTL_SECS)', () => {
    expect(tierExpiry('short', T, { short: 3, mid: 60, long: null })).toBe('2026-03-01T00:00:03.000000+00:00');
    expect(tierExpiry('mid', T, { short: 3, mid: 60, long: null })).toBe('2026-03-01T00:01:00.000000+00:00');
  });
});

describe('expiry: expires_at <= now is expired', () => {
  it('is expired at the instant itself and after, not a microsecond before', () => {
    expect(isExpiredAt(T, t - 1)).toBe(false);
    expect(isExpiredAt(T, t)).toBe(true);
    expect(isExpiredAt(T, t + 1)).toBe(true);
  });
  it('never expires a memory without expires_at (or with an unreadable one)', () => {
    expect(isExpiredAt(undefined, t)).toBe(false);
    expect(isExpiredAt(null, t)).toBe(false);
    expect(isExpiredAt('not a time', t)).toBe(false);
    expect(isExpired({ expires_at: '2026-02-01T00:00:00Z' }, t)).toBe(true);
  });
});

describe('grace-horizon refusal', () => {
  const through = t;
  it('refuses a version of an id held nowhere here no newer than the newest collected tombstone', () => {
    expect(beyondTombstoneGrace(t - 1, false, through)).toBe(true);
    expect(beyondTombstoneGrace(t, false, through)).toBe(true);
  });
  it('applies a newer version, any version of an id held here, and everything on a node that never collected', () => {
    expect(beyondTombstoneGrace(t + 1, false, through)).toBe(false);
    expect(beyondTombstoneGrace(t - 1, true, through)).toBe(false);
    expect(beyondTombstoneGrace(0, false, null)).toBe(false);
  });
  it('compares a memory by updated_at and a tombstone by deleted_at', () => {
    expect(lwwTime({ updated_at: T })).toBe(T);
    expect(lwwTime({ deleted_at: T })).toBe(T);
  });
});

describe('what a sender serves', () => {
  const stored = (id: string, expires_at: string | undefined, deletedAt: string | null = null): StoredMemory => ({ memory: { id, ...(expires_at ? { expires_at } : {}) } as unknown as Memory, deletedAt, digest: '' });
  it('drops expired memories, keeps live ones and every tombstone', () => {
    const m = new Map([
      ['live', stored('live', '2026-04-01T00:00:00Z')],
      ['forever', stored('forever', undefined)],
      ['gone', stored('gone', '2026-02-01T00:00:00Z')],
      ['tomb', stored('tomb', '2026-02-01T00:00:00Z', T)],
    ]);
    expect([...servable(m, t).keys()].sort()).toEqual(['forever', 'live', 'tomb']);
  });
});
