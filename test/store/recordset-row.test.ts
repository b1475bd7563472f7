import { describe, expect, it } from 'vitest';
import { memoryDigest, validateMemory } from '../../src/memory/model.js';
import { memoryRow, recordsetJson, recordsetRow } from '../../src/store/memories.js';
import { wireMemory } from '../helpers/peer.js';

/** A recordset row is what Postgres reads a memory's columns from: each must equal the stored row's. */
describe('recordset rows', () => {
  const memories = [
    validateMemory(wireMemory({ id: 'a', tags: ['x', 'y'], metadata: { agent_id: 'ag', nested: { '10': 1, '9': [true, null] } } })),
    validateMemory(wireMemory({ id: 'b', metadata: { agent_id: 42 }, expires_at: '2027-01-01T00:00:00.000000+00:00', tier: 'short' })),
    validateMemory(wireMemory({ id: 'c', title: 'quote " and \u2028 and \u{1F600}', metadata: {} })),
  ];

  it('holds every column of the stored row, the memory itself as doc and its digest', () => {
    for (const m of memories) {
      const r = memoryRow(m);
      const parsed = JSON.parse(recordsetRow(m)) as Record<string, unknown>;
      expect(parsed).toEqual({
        id: r.id, namespace: r.namespace, tier: r.tier, title: r.title, agent_id: r.agentId, tags: r.tags, created_at: r.createdAt,
        updated_at: r.updatedAt, expires_at: r.expiresAt, version: r.version, digest: memoryDigest(m), doc: JSON.parse(JSON.stringify(m)),
      });
    }
  });

  it('joins the rows into one JSON array', () => {
    expect((JSON.parse(recordsetJson(memories)) as Array<{ id: string }>).map((r) => r.id)).toEqual(['a', 'b', 'c']);
    expect(recordsetJson([])).toBe('[]');
  });
});
