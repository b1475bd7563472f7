import { randomUUID } from 'node:crypto';
import { buildNewMemory } from '../../src/memory/input.js';
import type { Memory } from '../../src/memory/model.js';
import { nowMicros } from '../../src/memory/time.js';

const CONTENT = 'The quick brown fox remembers that the deploy window is Tuesday 14:00 UTC. '.repeat(3);

/** A create-request body as a client would send it (~400 bytes of JSON). */
export function memoryInput(i: number): Record<string, unknown> {
  return { title: `bench memory ${i}`, content: CONTENT, namespace: 'bench/load', tags: ['bench', `t${i % 16}`], priority: 5 };
}

/** A complete memory as the API would build it for `memoryInput(i)`. */
export function newMemory(i: number): Memory {
  return buildNewMemory({ ...memoryInput(i), id: randomUUID() }, { agentId: 'bench-agent', nowMicros: nowMicros() });
}

export const newMemories = (n: number, offset = 0) => Array.from({ length: n }, (_, i) => newMemory(offset + i));
