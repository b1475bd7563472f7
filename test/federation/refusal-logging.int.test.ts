import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newNonce } from '../../src/federation/signing.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL, freePort, waitFor } from '../helpers/env.js';
import { newKeyDir } from '../helpers/node.js';
import { spawnMemfed, waitHealthy, type NodeProcess } from '../helpers/process.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';

/*
 * Every refused federation request is counted; the first AUDIT_REFUSAL_BURST of a tag per
 * window are logged one by one, the rest in one summary line per window: a flood of
 * refused requests cannot flood the log. Header-level push refusals (decided before the
 * body is read) are logged like the others.
 */

const BURST = 3;
const FLOOD = 12;
let db: TestDatabase;
let node: NodeProcess;
let base: string;
const prefix = uniquePrefix();

beforeAll(async () => {
  db = await createTestDatabase();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  node = spawnMemfed(['api'], { NODE_ID: 'refusal-logger', DATABASE_URL: db.url, REDIS_URL, QUEUE_PREFIX: prefix, FED_KEY_DIR: newKeyDir(), HTTP_PORT: String(port), LOG_LEVEL: 'info', AUDIT_REFUSAL_BURST: String(BURST), AUDIT_REFUSAL_WINDOW_MS: '1500' });
  await waitHealthy(base);
});
afterAll(async () => {
  await node?.stop();
  await db?.drop();
  await dropPrefix(prefix);
});

const logLines = () => node.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('refused federation requests in the log', () => {
  it('a flood of header-level push refusals: every one counted, the burst logged one by one, the rest in one summary', async () => {
    for (let i = 0; i < FLOOD; i++) {
      const r = await fetch(`${base}/api/v1/sync/push`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-peer-id': `stranger-${i}`, 'x-memory-nonce': newNonce() }, body: '{"sender_agent_id":"x","memories":[]}' });
      expect(r.status).toBe(401);
    }
    const summary = await waitFor(async () => logLines().find((l) => l.tag === 'peer_not_enrolled' && l.suppressed !== undefined), { timeoutMs: 15_000, what: 'the summary line after the window' });
    const single = logLines().filter((l) => l.msg === 'federation request refused' && l.tag === 'peer_not_enrolled');
    expect(single).toHaveLength(BURST);
    expect(single.map((l) => l.peer)).toEqual(['stranger-0', 'stranger-1', 'stranger-2']);
    expect(single.every((l) => l.path === '/api/v1/sync/push' && l.level === 40)).toBe(true);
    expect(summary.suppressed).toBe(FLOOD - BURST);
    expect((summary.peers_sample as string[]).length).toBeLessThanOrEqual(10);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`memfed_inbound_refusals_total\\{[^}]*reason="peer_not_enrolled"[^}]*\\} ${FLOOD}\\b`));
  });
});
