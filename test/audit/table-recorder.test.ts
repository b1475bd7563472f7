import { describe, expect, it } from 'vitest';
import { tableRecorder } from '../../src/audit/events.js';
import { createLogger } from '../../src/logger.js';

describe('tableRecorder (the CLI tools\' audit recorder)', () => {
  it('stores events in the order they were recorded, whatever each insert takes', async () => {
    const stored: string[] = [];
    // The first insert is the slowest: concurrent inserts would finish in reverse.
    const delays = [30, 20, 10, 0];
    let n = 0;
    const recorder = tableRecorder(async (_id, event) => {
      await new Promise((r) => setTimeout(r, delays[n++] ?? 0));
      stored.push(event.subject ?? '');
    }, createLogger('silent'));
    for (const subject of ['first', 'second', 'third', 'fourth']) recorder.record({ kind: 'dlq.operator', subject, details: {} });
    await recorder.flush();
    expect(stored).toEqual(['first', 'second', 'third', 'fourth']);
  });

  it('an insert that fails is logged and does not stop the ones after it', async () => {
    const stored: string[] = [];
    const recorder = tableRecorder(async (_id, event) => {
      if (event.subject === 'bad') throw new Error('insert failed');
      stored.push(event.subject ?? '');
    }, createLogger('silent'));
    for (const subject of ['a', 'bad', 'b']) recorder.record({ kind: 'dlq.operator', subject, details: {} });
    await recorder.flush();
    expect(stored).toEqual(['a', 'b']);
  });
});
