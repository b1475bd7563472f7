import { describe, expect, it } from 'vitest';
import { judge, judgeServed, prepareRows } from '../../src/federation/served-rows.js';
import type { Memory } from '../../src/memory/model.js';
import { recordsetJson } from '../../src/store/memories.js';
import { wireMemory } from '../helpers/peer.js';

const served = () => [wireMemory({ id: 'a', tags: ['x'], metadata: { agent_id: 'ag', nested: { k: [1, 2] } } }), wireMemory({ id: 'bad', tier: 'nope' }), wireMemory({ id: 'b', updated_at: '2026-01-01T00:00:00Z' })];

describe('rows of a page prepared ahead', () => {
  it('judges every served row as judging it at apply would', () => {
    const rows = served();
    const prepared = prepareRows('peer', rows, undefined);
    for (const raw of rows) expect(judgeServed(prepared, 'peer', raw, undefined)).toEqual(judge('peer', raw, undefined));
    expect(prepared.judged.size).toBe(3);
  });

  it('encodes the recordset rows of the valid memories exactly as the apply would', () => {
    const prepared = prepareRows('peer', served(), undefined);
    const memories = [...prepared.judged.values()].flatMap((j): Memory[] => ('memory' in j ? [j.memory] : []));
    expect(memories.map((m) => m.id)).toEqual(['a', 'b']);
    expect(prepared.encoded.size).toBe(2);
    expect(recordsetJson(memories, prepared.encoded)).toBe(recordsetJson(memories));
    // A row not encoded ahead is encoded at apply; the text is the same either way.
    expect(recordsetJson([...memories].reverse(), new Map([[memories[0]!, prepared.encoded.get(memories[0]!)!]]))).toBe(recordsetJson([...memories].reverse()));
    expect(JSON.parse(recordsetJson(memories))).toHaveLength(2);
  });

  it('judges at apply a row the preparation did not see', () => {
    const prepared = prepareRows('peer', [], undefined);
    const raw = wireMemory({ id: 'late' });
    expect(judgeServed(prepared, 'peer', raw, undefined)).toEqual(judge('peer', raw, undefined));
  });

  it('prepares nothing from a page without a memories array', () => {
    expect(prepareRows('peer', undefined, undefined).judged.size).toBe(0);
    expect(prepareRows('peer', 'not rows', undefined).encoded.size).toBe(0);
  });
});
