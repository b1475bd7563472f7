import { describe, it, expect } from 'vitest';
import { ApiError } from '../../src/errors.js';
import { LANE_MAX, buildPushBody, parsePushBody } from '../../src/federation/wire.js';
import { validateMemory, type Memory } from '../../src/memory/model.js';

const NOW = '2024-06-01T00:00:00.000000+00:00';

function rawMemory(id: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    tier: 'mid',
    namespace: 'global',
    title: `title ${id}`,
    content: 'content',
    tags: [],
    priority: 5,
    confidence: 1,
    source: 'api',
    access_count: 0,
    created_at: '2024-01-01T00:00:00Z',
    updated_at: '2024-01-02T00:00:00Z',
    ...over,
  };
}

function refusal(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(400);
    return err as ApiError;
  }
  throw new Error('expected an ApiError, nothing was thrown');
}

describe('parsePushBody: envelope', () => {
  it('requires an object body', () => {
    for (const b of [null, [], 'x', 5]) refusal(() => parsePushBody(b, NOW));
  });

  it('requires sender_agent_id', () => {
    for (const sender of [undefined, '', 5, null]) {
      expect(refusal(() => parsePushBody({ sender_agent_id: sender, memories: [] }, NOW)).message).toMatch(/sender_agent_id/);
    }
  });

  it('requires a memories array', () => {
    for (const memories of [undefined, null, 'x', {}]) {
      expect(refusal(() => parsePushBody({ sender_agent_id: 's', memories }, NOW)).message).toMatch(/memories/);
    }
  });

  it('accepts an empty push', () => {
    expect(parsePushBody({ sender_agent_id: 's', memories: [] }, NOW)).toEqual({
      sender: 's',
      recipient: undefined,
      dryRun: false,
      memories: [],
      tombstones: [],
      archives: [],
      links: [],
      linkRemovals: [],
      skipped: [],
      unsupported: {},
    });
  });

  it('reads recipient and dry_run', () => {
    const p = parsePushBody({ sender_agent_id: 's', memories: [], recipient: 'r', dry_run: true }, NOW);
    expect(p.recipient).toBe('r');
    expect(p.dryRun).toBe(true);
    expect(parsePushBody({ sender_agent_id: 's', memories: [], dry_run: 'true', recipient: 5 }, NOW)).toMatchObject({ dryRun: false, recipient: undefined });
  });

  it('ignores unknown lanes and keys', () => {
    const p = parsePushBody({ sender_agent_id: 's', memories: [], future_lane: [1, 2, 3], another: { x: 1 }, huge_future: new Array(5000).fill(0) }, NOW);
    expect(p.memories).toEqual([]);
    expect(p.skipped).toEqual([]);
    expect(p.unsupported).toEqual({});
  });

  it('refuses a known lane that is not an array', () => {
    expect(refusal(() => parsePushBody({ sender_agent_id: 's', memories: [], deletions: 'm1' }, NOW)).message).toMatch(/deletions/);
    // null counts as absent
    expect(parsePushBody({ sender_agent_id: 's', memories: [], deletions: null, tombstones: null }, NOW).tombstones).toEqual([]);
  });
});

describe('parsePushBody: lane caps', () => {
  it('accepts 1000 memories', () => {
    const memories = Array.from({ length: LANE_MAX }, (_, i) => rawMemory(`m${i}`));
    const p = parsePushBody({ sender_agent_id: 's', memories }, NOW);
    expect(p.memories).toHaveLength(1000);
    expect(p.skipped).toEqual([]);
  });

  it.each(['memories', 'deletions', 'tombstones', 'archives', 'restores', 'links'])('refuses 1001 %s with the upstream message', (lane) => {
    const body: Record<string, unknown> = { sender_agent_id: 's', memories: [], [lane]: new Array(1001).fill('x') };
    const err = refusal(() => parsePushBody(body, NOW));
    expect(err.message).toBe(`sync_push limited to 1000 ${lane} per request`);
    expect(err.code).toBe('LANE_TOO_LARGE');
  });

  it('accepts 1000 deletions', () => {
    const deletions = Array.from({ length: 1000 }, (_, i) => `d${i}`);
    expect(parsePushBody({ sender_agent_id: 's', memories: [], deletions }, NOW).tombstones).toHaveLength(1000);
  });
});

describe('parsePushBody: memories', () => {
  it('passes valid rows (validated and normalised) and reports invalid rows in skipped', () => {
    const p = parsePushBody({
      sender_agent_id: 's',
      memories: [
        rawMemory('good-1', { future_key: 'kept' }),
        rawMemory('bad-prio', { priority: 11 }),
        rawMemory('bad-title', { title: '   ' }),
        'not an object',
        null,
        { id: 42 },
        rawMemory('good-2'),
        rawMemory('x'.repeat(200)),
      ],
    }, NOW);
    expect(p.memories.map((m) => m.id)).toEqual(['good-1', 'good-2']);
    expect(p.memories[0]!.updated_at).toBe('2024-01-02T00:00:00.000000+00:00');
    expect(p.memories[0]!.future_key).toBe('kept');
    expect(p.skipped).toHaveLength(6);
    expect(p.skipped.every((s) => s.status === 'skipped' && typeof s.reason === 'string' && s.reason.length > 0)).toBe(true);
    expect(p.skipped.map((s) => s.id)).toEqual(['bad-prio', 'bad-title', '', '', '', 'x'.repeat(128)]);
    expect(p.skipped[0]!.reason).toMatch(/priority/);
    expect(p.skipped[1]!.reason).toMatch(/title/);
    expect(p.skipped[5]!.reason).toMatch(/^id:/);
  });
});

describe('parsePushBody: deletions and tombstones', () => {
  it('deletions without tombstones become time-less tombstones at the given time', () => {
    const p = parsePushBody({ sender_agent_id: 's', memories: [], deletions: ['d1', 'd2'] }, NOW);
    expect(p.tombstones).toEqual([{ id: 'd1', deleted_at: NOW, untimed: true }, { id: 'd2', deleted_at: NOW, untimed: true }]);
  });

  it('a tombstone entry overrides the deletions entry for the same id', () => {
    const p = parsePushBody({
      sender_agent_id: 's',
      memories: [],
      deletions: ['d1', 'd2'],
      tombstones: [{ id: 'd1', deleted_at: '2024-01-01T01:00:00+01:00' }],
    }, NOW);
    expect(p.tombstones).toHaveLength(2);
    expect(p.tombstones).toContainEqual({ id: 'd1', deleted_at: '2024-01-01T00:00:00.000000+00:00' });
    expect(p.tombstones).toContainEqual({ id: 'd2', deleted_at: NOW, untimed: true });
  });

  it('invalid tombstones and deletion ids are skipped with a reason', () => {
    const p = parsePushBody({
      sender_agent_id: 's',
      memories: [],
      deletions: ['ok', 'a..b', 7],
      tombstones: [{ id: 't1', deleted_at: 'never' }, { id: 'a b', deleted_at: NOW }, null, { id: 't2', deleted_at: NOW }],
    }, NOW);
    expect(p.tombstones).toEqual([{ id: 't2', deleted_at: NOW }, { id: 'ok', deleted_at: NOW, untimed: true }]);
    expect(p.skipped).toEqual([
      { id: 't1', status: 'skipped', reason: 'tombstone needs a valid id and deleted_at' },
      { id: 'a b', status: 'skipped', reason: 'tombstone needs a valid id and deleted_at' },
      { id: '', status: 'skipped', reason: 'tombstone needs a valid id and deleted_at' },
      { id: 'a..b', status: 'skipped', reason: 'invalid id in deletions' },
      { id: '', status: 'skipped', reason: 'invalid id in deletions' },
    ]);
  });
});

describe('parsePushBody: archive and link lanes', () => {
  const link = { source_id: 'a', target_id: 'b', relation: 'supersedes', created_at: '2024-05-01T00:00:00Z' };

  it('reads upstream archives and restores as events at receipt time', () => {
    const p = parsePushBody({ sender_agent_id: 's', memories: [], archives: ['a', 'b'], restores: ['c'] }, NOW);
    expect(p.archives).toEqual([
      { id: 'a', archived: true, at: NOW, untimed: true },
      { id: 'b', archived: true, at: NOW, untimed: true },
      { id: 'c', archived: false, at: NOW, untimed: true },
    ]);
    expect(p.skipped).toEqual([]);
  });

  it('takes the time of a memfed archive event over the bare id', () => {
    const p = parsePushBody({ sender_agent_id: 's', memories: [], archives: ['a'], archive_events: [{ id: 'a', archived: true, at: '2024-05-01T00:00:00Z', reason: 'stale' }] }, NOW);
    expect(p.archives).toEqual([{ id: 'a', archived: true, at: '2024-05-01T00:00:00.000000+00:00', reason: 'stale' }]);
    expect(parsePushBody({ sender_agent_id: 's', memories: [], archive_events: [{ id: 'a', archived: true, at: NOW, reason: 5 }] }, NOW).skipped).toHaveLength(1);
  });

  it('skips invalid archive ids and malformed archive events', () => {
    const p = parsePushBody({ sender_agent_id: 's', memories: [], archives: ['a..b', 7], restores: [''], archive_events: [{ id: 'x', archived: 'yes', at: NOW }, { id: 'y', archived: true, at: 'soon' }] }, NOW);
    expect(p.archives).toEqual([]);
    expect(p.skipped.map((r) => r.reason)).toEqual([
      'archive event needs a valid id, archived (boolean), at and an optional reason string',
      'archive event needs a valid id, archived (boolean), at and an optional reason string',
      'invalid id in archives',
      'invalid id in archives',
      'invalid id in restores',
    ]);
  });

  it('reads links in upstream MemoryLink shape, optional H3 fields kept', () => {
    const p = parsePushBody({ sender_agent_id: 's', memories: [], links: [{ ...link, observed_by: 'peer-x', signature: [1, 2, 3], attest_level: 'peer_attested' }] }, NOW);
    expect(p.links).toEqual([{ source_id: 'a', target_id: 'b', relation: 'supersedes', created_at: '2024-05-01T00:00:00.000000+00:00', observed_by: 'peer-x', signature: [1, 2, 3] }]);
  });

  it('skips links upstream refuses: bad ids, unknown relation, self-link, missing created_at', () => {
    const p = parsePushBody(
      { sender_agent_id: 's', memories: [], links: [{ ...link, source_id: 'a..b' }, { ...link, relation: 'likes' }, { ...link, target_id: 'a' }, { ...link, created_at: undefined }, 'x'] },
      NOW,
    );
    expect(p.links).toEqual([]);
    expect(p.skipped.map((r) => r.reason)).toEqual([
      'link: invalid source_id',
      expect.stringMatching(/^link: invalid relation/),
      'link: cannot link a memory to itself',
      'link: link created_at must be an RFC 3339 timestamp',
      'link: link must be an object',
    ]);
    expect(p.skipped.map((r) => r.id)).toEqual(['a..b', 'a', 'a', 'a', '']);
  });

  it('accepts all six upstream relations', () => {
    const relations = ['related_to', 'supersedes', 'contradicts', 'derived_from', 'reflects_on', 'derives_from'];
    const p = parsePushBody({ sender_agent_id: 's', memories: [], links: relations.map((relation) => ({ ...link, relation })) }, NOW);
    expect(p.links.map((l) => l.relation)).toEqual(relations);
  });

  it('reads memfed link removals', () => {
    const p = parsePushBody({ sender_agent_id: 's', memories: [], link_removals: [{ source_id: 'a', target_id: 'b', relation: 'related_to', removed_at: '2024-05-02T00:00:00Z' }, { source_id: 'a' }] }, NOW);
    expect(p.linkRemovals).toEqual([{ source_id: 'a', target_id: 'b', relation: 'related_to', removed_at: '2024-05-02T00:00:00.000000+00:00' }]);
    expect(p.skipped).toHaveLength(1);
  });

  it('counts the lanes memfed does not apply, leaving empty lanes out', () => {
    const p = parsePushBody({ sender_agent_id: 's', memories: [], pendings: [{}, {}], namespace_meta: [{}], namespace_meta_clears: [], pending_decisions: [{}] }, NOW);
    expect(p.unsupported).toEqual({ pendings: 2, namespace_meta: 1, pending_decisions: 1 });
  });

  it('caps the new lanes as upstream caps every subcollection', () => {
    for (const lane of ['archive_events', 'link_removals', 'pendings', 'namespace_meta']) {
      expect(refusal(() => parsePushBody({ sender_agent_id: 's', memories: [], [lane]: new Array(LANE_MAX + 1).fill('x') }, NOW)).code).toBe('LANE_TOO_LARGE');
    }
  });
});

describe('buildPushBody', () => {
  const memories: Memory[] = [validateMemory(rawMemory('m1')), validateMemory(rawMemory('m2'))];
  const tombstones = [{ id: 'd1', deleted_at: '2024-02-01T00:00:00.000000+00:00' }];

  it('has the upstream lanes plus memfed tombstones and the recipient', () => {
    const body = buildPushBody({ sender: 'node-a', recipient: 'node-b', memories, tombstones });
    expect(body).toEqual({ sender_agent_id: 'node-a', recipient: 'node-b', memories, deletions: ['d1'], tombstones });
    expect(Object.keys(body)).toEqual(['sender_agent_id', 'recipient', 'memories', 'deletions', 'tombstones']);
  });

  it('round-trips through JSON and parsePushBody', () => {
    const body = JSON.parse(JSON.stringify(buildPushBody({ sender: 'node-a', recipient: 'node-b', memories, tombstones }))) as unknown;
    const p = parsePushBody(body, NOW);
    expect(p.sender).toBe('node-a');
    expect(p.recipient).toBe('node-b');
    expect(p.memories).toEqual(memories);
    expect(p.tombstones).toEqual(tombstones); // the timed tombstone wins over the untimed deletion
    expect(p.skipped).toEqual([]);
  });

  it('sends archive state in upstream lanes by effective state and memfed events with times', () => {
    const m = memories[0]!; // updated_at 2024-01-02
    const body = buildPushBody({
      sender: 'a',
      recipient: 'b',
      memories: [m],
      tombstones: [],
      archives: [
        { event: { id: 'm1', archived: true, at: '2024-03-01T00:00:00.000000+00:00' }, updatedAt: m.updated_at },
        // archived before its latest update: effectively live, so upstream gets a restore
        { event: { id: 'm2', archived: true, at: '2023-12-01T00:00:00.000000+00:00' }, updatedAt: m.updated_at },
        { event: { id: 'm3', archived: false, at: '2024-03-01T00:00:00.000000+00:00' }, updatedAt: m.updated_at },
      ],
    });
    expect(body.archives).toEqual(['m1']);
    expect(body.restores).toEqual(['m2', 'm3']);
    expect(body.archive_events).toHaveLength(3);
  });

  it('sends live links in `links` and removed ones in `link_removals`', () => {
    const base = { source_id: 'm1', target_id: 'm2', relation: 'related_to' as const, attest_level: 'unsigned' };
    const body = buildPushBody({
      sender: 'a',
      recipient: 'b',
      memories,
      tombstones: [],
      links: [
        { ...base, created_at: '2024-03-01T00:00:00.000000+00:00', removed_at: null },
        { ...base, relation: 'supersedes', created_at: '2024-03-01T00:00:00.000000+00:00', removed_at: '2024-03-02T00:00:00.000000+00:00' },
        // re-created after a removal: live again
        { ...base, relation: 'contradicts', created_at: '2024-03-03T00:00:00.000000+00:00', removed_at: '2024-03-02T00:00:00.000000+00:00' },
      ],
    });
    expect(body.links).toEqual([
      { source_id: 'm1', target_id: 'm2', relation: 'related_to', created_at: '2024-03-01T00:00:00.000000+00:00' },
      { source_id: 'm1', target_id: 'm2', relation: 'contradicts', created_at: '2024-03-03T00:00:00.000000+00:00' },
    ]);
    expect(body.link_removals).toEqual([{ source_id: 'm1', target_id: 'm2', relation: 'supersedes', removed_at: '2024-03-02T00:00:00.000000+00:00' }]);
    expect(body).not.toHaveProperty('archives');
  });
});
