import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAuditKeys } from '../../src/federation/keys.js';
import { verifyStoredChain } from '../../src/audit/verify.js';
import { newNonce } from '../../src/federation/signing.js';
import { waitFor } from '../helpers/env.js';
import { newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';

/*
 * Refusals before authentication are recorded from what a stranger claims. Whatever it
 * claims, the record is storable (jsonb refuses \u0000), short, and a flood of claimed
 * ids buys a bounded number of chain entries plus one counted summary per window.
 */

const NODE = 'refusal-recorder';
const BURST = 5;

describe('refusals recorded before authentication', () => {
  let n: TestNode;
  let keyDir: string;

  beforeAll(async () => {
    keyDir = newKeyDir();
    n = await startTestNode({ id: NODE, keyDir, env: { AUDIT_REFUSAL_BURST: String(BURST), AUDIT_REFUSAL_WINDOW_MS: '60000' } });
  });
  afterAll(async () => {
    await n?.destroy();
  });

  const refusals = async () =>
    (await n.db.database.sql`SELECT canonical FROM audit_log WHERE kind = 'federation.refused' ORDER BY seq`).map((r) => JSON.parse(r.canonical as string) as { actor?: string; details: Record<string, unknown> });

  const since = (peer: string) => fetch(`${n.url}/api/v1/sync/since?peer=${encodeURIComponent(peer)}`);
  const push = (peer: string) =>
    fetch(`${n.url}/api/v1/sync/push`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-peer-id': peer, 'x-memory-nonce': newNonce() },
      body: '{"sender_agent_id":"x","memories":[]}',
    });

  it('a NUL or a 6,000-character claimed id is refused, recorded cut short and storable, and the chain verifies', async () => {
    expect((await since('\u0000')).status).toBe(403);
    expect((await since('p'.repeat(6000))).status).toBe(403);
    // Both reached the outbox (a NUL would have made the jsonb insert fail) and the chain.
    const rows = await waitFor(async () => {
      const r = await refusals();
      return r.length >= 2 ? r : undefined;
    }, { timeoutMs: 20_000, what: 'both refusals appended' });
    // Two requests, two hand-offs to the outbox: the chain may hold them in either order.
    const claimed = rows.map((r) => String(r.details.claimed_peer)).sort();
    expect(claimed).toEqual(['\uFFFD', `${'p'.repeat(64)}...[6000 chars]`].sort());
    expect(rows.every((r) => r.actor === 'unknown' && r.details.tag === 'peer_id_invalid')).toBe(true);
    const [{ stuck }] = (await n.db.database.sql`SELECT count(*)::int AS stuck FROM audit_outbox WHERE status <> 'appended' AND status <> 'pending'`) as unknown as [{ stuck: number }];
    expect(stuck).toBe(0);
    const { keys } = await loadAuditKeys(keyDir, NODE);
    expect(await verifyStoredChain(n.db.database.db, { nodeId: NODE, keys })).toMatchObject({ ok: true });
  });

  it('random claimed ids share one budget per tag: a flood makes at most the burst of entries, the rest are counted', async () => {
    const before = (await refusals()).filter((r) => r.details.tag === 'peer_not_enrolled').length;
    const flood = 40;
    for (let i = 0; i < flood; i++) expect((await push(`stranger-${i}`)).status).toBe(401);
    // The window is a minute: the flood's entries are those that fit the burst after the first test.
    await waitFor(async () => (await refusals()).filter((r) => r.details.tag === 'peer_not_enrolled').length >= BURST, { timeoutMs: 20_000, what: 'the burst appended' });
    await new Promise((r) => setTimeout(r, 500));
    const single = (await refusals()).filter((r) => r.details.tag === 'peer_not_enrolled' && r.details.summary !== true);
    expect(single.length).toBe(BURST);
    expect(single.length - before).toBeLessThan(flood);
    // Closing the node flushes the window: one summary counts every refusal not recorded alone.
    await n.stop();
    // The outbox is the durable record (the chain appends from it once a worker runs again).
    const outbox = (await n.db.database.sql`SELECT event FROM audit_outbox WHERE event->>'kind' = 'federation.refused'`).map((r) => r.event as { details: Record<string, unknown> });
    const summaries = outbox.filter((r) => r.details.summary === true && r.details.tag === 'peer_not_enrolled');
    expect(summaries).toHaveLength(1);
    const s = summaries[0]!.details;
    expect(Number(s.suppressed) + single.length).toBe(before + flood);
    expect((s.actors_sample as string[]).length).toBeLessThanOrEqual(10);
  });
});
