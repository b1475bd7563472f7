import { describe, expect, it } from 'vitest';
import { archiveEventOf, isArchived, isLinkLive } from '../../src/store/archive-links.js';

const T = (d: number) => `2026-01-${String(d).padStart(2, '0')}T00:00:00.000000+00:00`;

describe('the archive LWW rule', () => {
  it('archived while the last event was an archive no older than the content version', () => {
    expect(isArchived(null, T(1))).toBe(false);
    expect(isArchived({ archivedAt: null, changedAt: T(5) }, T(1))).toBe(false);
    expect(isArchived({ archivedAt: T(5), changedAt: T(5) }, T(1))).toBe(true);
    // at equal time the archive wins; a newer update brings the memory back
    expect(isArchived({ archivedAt: T(5), changedAt: T(5) }, T(5))).toBe(true);
    expect(isArchived({ archivedAt: T(5), changedAt: T(5) }, T(6))).toBe(false);
    // compared as times, not strings (nanoseconds and offsets)
    expect(isArchived({ archivedAt: '2026-01-05T01:00:00+01:00', changedAt: T(5) }, '2026-01-05T00:00:00.000001Z')).toBe(false);
  });

  it('the replicated event is the register itself, with the reason only on an archive', () => {
    expect(archiveEventOf('m', { archivedAt: T(5), changedAt: T(5), reason: 'stale' })).toEqual({ id: 'm', archived: true, at: T(5), reason: 'stale' });
    expect(archiveEventOf('m', { archivedAt: null, changedAt: T(6), reason: 'stale' })).toEqual({ id: 'm', archived: false, at: T(6) });
  });
});

describe('the link LWW element set', () => {
  it('live while never removed or created after the last removal', () => {
    expect(isLinkLive({ created_at: T(1), removed_at: null })).toBe(true);
    expect(isLinkLive({ created_at: T(1), removed_at: T(2) })).toBe(false);
    expect(isLinkLive({ created_at: T(2), removed_at: T(2) })).toBe(false);
    expect(isLinkLive({ created_at: T(3), removed_at: T(2) })).toBe(true);
  });
});
