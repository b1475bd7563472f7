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
      skipped: [],
      ignoredLanes: {},
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
    expect(p.ignoredLanes).toEqual({});
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
  it('deletions without tombstones become tombstones at now', () => {
    const p = parsePushBody({ sender_agent_id: 's', memories: [], deletions: ['d1', 'd2'] }, NOW);
    expect(p.tombstones).toEqual([{ id: 'd1', deleted_at: NOW }, { id: 'd2', deleted_at: NOW }]);
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
    expect(p.tombstones).toContainEqual({ id: 'd2', deleted_at: NOW });
  });

  it('invalid tombstones and deletion ids are skipped with a reason', () => {
    const p = parsePushBody({
      sender_agent_id: 's',
      memories: [],
      deletions: ['ok', 'a..b', 7],
      tombstones: [{ id: 't1', deleted_at: 'never' }, { id: 'a b', deleted_at: NOW }, null, { id: 't2', deleted_at: NOW }],
    }, NOW);
    expect(p.tombstones).toEqual([{ id: 't2', deleted_at: NOW }, { id: 'ok', deleted_at: NOW }]);
    expect(p.skipped).toEqual([
      { id: 't1', status: 'skipped', reason: 'tombstone needs a valid id and deleted_at' },
      { id: 'a b', status: 'skipped', reason: 'tombstone needs a valid id and deleted_at' },
      { id: '', status: 'skipped', reason: 'tombstone needs a valid id and deleted_at' },
      { id: 'a..b', status: 'skipped', reason: 'invalid id in deletions' },
      { id: '', status: 'skipped', reason: 'invalid id in deletions' },
    ]);
  });
});

describe('parsePushBody: ignored lanes', () => {
  it('counts archives, restores and links it does not apply', () => {
    const p = parsePushBody({ sender_agent_id: 's', memories: [], archives: ['a', 'b'], restores: ['c'], links: [{ from: 'a', to: 'b' }, {}, {}] }, NOW);
    expect(p.ignoredLanes).toEqual({ archives: 2, restores: 1, links: 3 });
    expect(p.tombstones).toEqual([]);
  });

  it('leaves empty lanes out', () => {
    expect(parsePushBody({ sender_agent_id: 's', memories: [], archives: [], links: [] }, NOW).ignoredLanes).toEqual({});
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
});
