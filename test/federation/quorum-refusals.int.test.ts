import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

describe('quorum and refusals', () => {
  let n: TestNode;
  let upstream: UpstreamReceiver;
  beforeAll(async () => {
    const keyDir = newKeyDir();
    upstream = await new UpstreamReceiver('peer-q', keyDir).start();
    n = await startTestNode({ id: 'quorate', keyDir, peers: [{ id: 'peer-q', url: upstream.url }], env: { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '15000' } });
  });
  afterAll(async () => {
    await n?.destroy();
    await upstream?.stop();
  });

  it('a row the peer refused is not an ack: 503 quorum_not_met, the row in the DLQ', async () => {
    upstream.refuse.add('refused-q');
    const started = Date.now();
    const r = await api(n.url, 'POST', '/api/v1/memories', { id: 'refused-q', title: 'no', content: 'x' });
    expect(r.status).toBe(503);
    // Answered once the refusal made the quorum impossible, not at the 15 s deadline.
    expect(Date.now() - started).toBeLessThan(14_000);
    // The peer answered and refused the row: the reason says so, not `unreachable`.
    expect(r.json).toMatchObject({ error: 'quorum_not_met', got: 1, needed: 2, reason: 'refused' });
    const [dead] = await n.db.database.sql`SELECT peer_id, status, failure_class FROM federation_push_dlq WHERE memory_id = 'refused-q'`;
    expect(dead).toMatchObject({ peer_id: 'peer-q', status: 'pending', failure_class: 'skipped' });
    const ok = await api(n.url, 'POST', '/api/v1/memories', { title: 'yes', content: 'x' });
    expect(ok.status).toBe(201);
    expect(ok.json.quorum_acks).toBe(2);
  });
});
