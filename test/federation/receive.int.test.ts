import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { compareVersions, validateMemory } from '../../src/memory/model.js';
import { REDIS_URL } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';

let n: TestNode;
let keyDir: string;
let peer: FakePeer, stranger: FakePeer, other: FakePeer;

beforeAll(async () => {
  keyDir = newKeyDir();
  peer = await new FakePeer('peer-p').init();
  other = await new FakePeer('peer-o').init();
  stranger = await new FakePeer('peer-x').init();
  peer.enrolIn(keyDir);
  other.enrolIn(keyDir);
  n = await startTestNode({ id: 'receiver', keyDir });
});
afterAll(async () => {
  await n?.destroy();
});

// The group order L; S + L is the classic malleation a strict verifier must refuse.
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
function malleate(sig: Buffer): Buffer {
  const s = BigInt(`0x${Buffer.from(sig.subarray(32)).reverse().toString('hex')}`) + L;
  const out = Buffer.from(sig);
  Buffer.from(s.toString(16).padStart(64, '0'), 'hex').reverse().copy(out, 32);
  return out;
}

const push = async (memories: Array<Record<string, unknown>>) => (await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories }))).json;
/** Removes every trace of an id, so a test can apply versions to it from scratch. */
const forget = async (id: string) => {
  await n.db.database.sql`DELETE FROM memories WHERE id = ${id}`;
};

const state = async () => {
  const [r] = await n.db.database.sql`SELECT (SELECT count(*) FROM memories)::int AS m, (SELECT count(*) FROM change_feed)::int AS f`;
  return r;
};

describe('POST /api/v1/sync/push: receive', () => {
  it('applies a signed batch, reports results per id, and is idempotent', async () => {
    const m1 = wireMemory({ title: 'one' });
    const m2 = wireMemory({ title: 'two', future_key: { keep: true } });
    const bad = wireMemory({ title: '' });
    const body = { sender_agent_id: 'peer-p', recipient: 'receiver', memories: [m1, m2, bad], unknown_lane: [1, 2] };
    const r = await send(n.url, peer.push(body));
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ applied: 2, noop: 0, skipped: 1, dry_run: false, receiver_agent_id: 'receiver' });
    const byId = Object.fromEntries(r.json.results.map((x: { id: string; status: string }) => [x.id, x.status]));
    expect(byId).toEqual({ [m1.id as string]: 'applied', [m2.id as string]: 'applied', [bad.id as string]: 'skipped' });
    const got = await api(n.url, 'GET', `/api/v1/memories/${m2.id}`);
    expect(got.json.memory.future_key).toEqual({ keep: true });
    const before = await state();
    const again = await send(n.url, peer.push(body));
    expect(again.json).toMatchObject({ applied: 0, noop: 2, skipped: 1 });
    expect(await state()).toEqual(before);
  });

  it('last writer wins in either arrival order', async () => {
    const older = wireMemory({ id: 'lww-order', content: 'older', updated_at: '2026-01-01T00:00:00.000000+00:00' });
    const newer = wireMemory({ id: 'lww-order', content: 'newer', updated_at: '2026-01-02T00:00:00.000000+00:00' });
    for (const [first, second] of [[newer, older], [older, newer]] as const) {
      await forget('lww-order');
      expect((await push([first])).results).toEqual([{ id: 'lww-order', status: 'applied' }]);
      expect((await push([second])).results).toEqual([{ id: 'lww-order', status: second === newer ? 'applied' : 'noop' }]);
      expect((await api(n.url, 'GET', '/api/v1/memories/lww-order')).json.memory.content).toBe('newer');
    }
  });

  it('equal timestamps: the greater digest wins in SQL, the same winner in either arrival order', async () => {
    const ts = '2026-01-03T00:00:00.000000+00:00';
    const x = wireMemory({ id: 'tie-2', content: 'x', updated_at: ts });
    const y = wireMemory({ id: 'tie-2', content: 'y', updated_at: ts });
    // Each version's stored digest, alone: the tie-break key the SQL compares.
    const digestOf = async (m: Record<string, unknown>) => {
      await forget('tie-2');
      await push([m]);
      return String((await n.db.database.sql`SELECT digest FROM memories WHERE id = 'tie-2'`)[0]!.digest);
    };
    const dx = await digestOf(x);
    const dy = await digestOf(y);
    expect(dx).not.toBe(dy);
    // The winner the model's LWW order picks, which is the greater digest.
    const winner = compareVersions({ memory: validateMemory(x), deletedAt: null, digest: dx }, { memory: validateMemory(y), deletedAt: null, digest: dy }) > 0 ? 'x' : 'y';
    expect(winner).toBe(dx > dy ? 'x' : 'y');
    for (const [first, second] of [[x, y], [y, x]] as const) {
      await forget('tie-2');
      await push([first]);
      const r = await push([second]);
      expect(r.results).toEqual([{ id: 'tie-2', status: second.content === winner ? 'applied' : 'noop' }]);
      expect((await api(n.url, 'GET', '/api/v1/memories/tie-2')).json.memory.content).toBe(winner);
      // and the loser arriving again changes nothing
      expect((await push([first.content === winner ? second : first])).results[0].status).toBe('noop');
    }
  });

  it('equal timestamps: a tombstone beats a live copy in either arrival order', async () => {
    const ts = '2026-01-04T00:00:00.000000+00:00';
    const live = wireMemory({ id: 'tie-tomb', content: 'live', updated_at: ts });
    const tomb = { id: 'tie-tomb', deleted_at: ts };
    await forget('tie-tomb');
    await push([live]);
    const del = await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [], tombstones: [tomb] }));
    expect(del.json.results).toEqual([{ id: 'tie-tomb', status: 'applied' }]);
    expect((await api(n.url, 'GET', '/api/v1/memories/tie-tomb')).status).toBe(404);
    await forget('tie-tomb');
    await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [], tombstones: [tomb] }));
    expect((await push([live])).results).toEqual([{ id: 'tie-tomb', status: 'noop' }]);
    expect((await api(n.url, 'GET', '/api/v1/memories/tie-tomb')).status).toBe(404);
  });

  it('a tombstone blocks an older copy arriving later; a newer update resurrects', async () => {
    const id = 'tomb-1';
    await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [], tombstones: [{ id, deleted_at: '2026-02-01T00:00:00Z' }], deletions: [id] }));
    const late = await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [wireMemory({ id, updated_at: '2026-01-15T00:00:00Z' })] }));
    expect(late.json.results[0].status).toBe('noop');
    expect((await api(n.url, 'GET', `/api/v1/memories/${id}`)).status).toBe(404);
    const newer = await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [wireMemory({ id, updated_at: '2026-03-01T00:00:00Z' })] }));
    expect(newer.json.results[0].status).toBe('applied');
    expect((await api(n.url, 'GET', `/api/v1/memories/${id}`)).status).toBe(200);
  });

  it('refuses a signed push whose body is not declared JSON (415), and accepts the type upstream sends', async () => {
    const before = await state();
    const plain = peer.push({ sender_agent_id: 'peer-p', memories: [wireMemory()] });
    plain.headers['content-type'] = 'text/plain';
    const r = await send(n.url, plain);
    expect(r.status).toBe(415);
    expect(r.json.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(await state()).toEqual(before);
    // upstream ai-memory 0.7 sends exactly `content-type: application/json`.
    expect((await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [wireMemory()] }))).status).toBe(200);
  });

  it('skips a pushed memory over MEMORY_MAX_BYTES with a reason (the sender dead-letters it) and applies the rest', async () => {
    const huge = wireMemory({ future_blob: 'x'.repeat(300 * 1024) });
    const ok = wireMemory();
    const r = await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [huge, ok] }));
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ applied: 1, skipped: 1 });
    const res = r.json.results.find((x: { id: string }) => x.id === huge.id);
    expect(res).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/^MEMORY_TOO_LARGE: .*at most 262144/) });
    expect((await api(n.url, 'GET', `/api/v1/memories/${huge.id}`)).status).toBe(404);
  });

  it('applies and serves pushed unknown and metadata keys named like Object.prototype members', async () => {
    const inherited = { constructor: 'c', toString: 't', valueOf: 1, hasOwnProperty: [1] };
    const m = wireMemory({ ...inherited, metadata: inherited });
    expect((await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [m] }))).json).toMatchObject({ applied: 1 });
    const got = JSON.parse((await api(n.url, 'GET', `/api/v1/memories/${m.id}`)).text).memory;
    for (const [k, v] of Object.entries(inherited)) {
      expect(Object.hasOwn(got, k) && got[k], k).toEqual(v);
      expect(Object.hasOwn(got.metadata, k) && got.metadata[k], `metadata.${k}`).toEqual(v);
    }
    // and the same row pushed again is a no-op: the stored copy hashes as the sent one
    expect((await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [m] }))).json).toMatchObject({ applied: 0, noop: 1 });
  });

  it('refuses lanes over 1000 entries with the upstream message', async () => {
    const r = await send(n.url, peer.push({ sender_agent_id: 'peer-p', memories: [], deletions: Array.from({ length: 1001 }, (_, i) => `d${i}`) }));
    expect(r.status).toBe(400);
    expect(r.json.error).toBe('sync_push limited to 1000 deletions per request');
  });
});

describe('signed-request attacks are refused with the wire contract tags and change nothing', () => {
  const body = () => ({ sender_agent_id: 'peer-p', recipient: 'receiver', memories: [wireMemory()] });

  const attacks: Array<[string, () => { headers: Record<string, string>; body: Buffer }, number, string]> = [
    ['body tampered after signing', () => { const r = peer.push(body()); r.body = Buffer.from(r.body.toString().replace('hello', 'HELLO')); return r; }, 401, 'x_memory_sig_bad_signature'],
    ['nonce header swapped', () => { const r = peer.push(body()); r.headers['x-memory-nonce'] = `${Date.now()}.00000000-0000-4000-8000-000000000000`; return r; }, 401, 'x_memory_sig_bad_signature'],
    ['signed by another enrolled key', () => { const r = other.push(body()); r.headers['x-peer-id'] = 'peer-p'; return r; }, 401, 'x_memory_sig_bad_signature'],
    ['unsigned from an enrolled peer', () => { const r = peer.push(body()); delete r.headers['x-memory-sig']; return r; }, 401, 'x_memory_sig_missing'],
    ['signed by an unknown key', () => { const r = stranger.push({ ...body(), sender_agent_id: 'peer-x' }); return r; }, 401, 'x_memory_sig_no_enrolled_key'],
    ['unsigned from an unknown peer', () => { const r = stranger.push({ ...body(), sender_agent_id: 'peer-x' }); delete r.headers['x-memory-sig']; return r; }, 401, 'peer_not_enrolled'],
    ['truncated signature', () => { const r = peer.push(body()); r.headers['x-memory-sig'] = r.headers['x-memory-sig']!.slice(0, 60); return r; }, 401, 'x_memory_sig_malformed'],
    ['bit-flipped signature', () => { const r = peer.push(body()); const sig = Buffer.from(r.headers['x-memory-sig']!.slice(8), 'base64'); sig[10] = sig[10]! ^ 0x10; r.headers['x-memory-sig'] = `ed25519=${sig.toString('base64')}`; return r; }, 401, 'x_memory_sig_bad_signature'],
    ['malleated signature (S + L)', () => { const r = peer.push(body()); r.headers['x-memory-sig'] = `ed25519=${malleate(Buffer.from(r.headers['x-memory-sig']!.slice(8), 'base64')).toString('base64')}`; return r; }, 401, 'x_memory_sig_bad_signature'],
    ['unknown algorithm', () => { const r = peer.push(body()); r.headers['x-memory-sig'] = r.headers['x-memory-sig']!.replace('ed25519=', 'rsa='); return r; }, 401, 'x_memory_sig_unknown_algorithm'],
    ['missing nonce', () => { const r = peer.push(body()); delete r.headers['x-memory-nonce']; return r; }, 401, 'x_memory_nonce_missing'],
    ['stale memfed nonce', () => peer.push(body(), { nonce: `${Date.now() - 3_600_000}.0b7e2d6c-1f7e-4b8e-9c1a-2f3d4e5f6a7b` }), 401, 'x_memory_nonce_expired'],
    ['missing x-peer-id', () => { const r = peer.push(body()); delete r.headers['x-peer-id']; return r; }, 403, 'peer_id_header_missing'],
    ['x-peer-id differs from sender_agent_id', () => { const r = other.push(body()); return r; }, 403, 'sender_agent_id_mismatch'],
    ['cross-addressed (recipient is another node)', () => peer.push({ ...body(), recipient: 'someone-else' }), 403, 'recipient_mismatch'],
  ];

  for (const [name, make, status, tag] of attacks) {
    it(name, async () => {
      const before = await state();
      const r = await send(n.url, make());
      expect(r.status).toBe(status);
      expect(r.json.error).toBe(tag);
      expect(await state()).toEqual(before);
    });
  }

  it('a replayed request is refused, also after the receiver restarts', async () => {
    const req = peer.push(body());
    expect((await send(n.url, req)).status).toBe(200);
    const before = await state();
    const replay = await send(n.url, req);
    expect(replay.status).toBe(401);
    expect(replay.json.error).toBe('x_memory_nonce_replay');
    await n.stop();
    // Fresh ports: re-binding the one just released can collide.
    const restarted = await startTestNode({ id: 'receiver', keyDir, db: n.db, prefix: n.prefix });
    try {
      const again = await send(restarted.url, req);
      expect(again.json.error).toBe('x_memory_nonce_replay');
      expect(await state()).toEqual(before);
    } finally {
      await restarted.stop();
      n = await startTestNode({ id: 'receiver', keyDir, db: n.db, prefix: n.prefix });
    }
  });

  it('bare upstream nonces are accepted once and refused on replay', async () => {
    const req = peer.push(body(), { bareNonce: true });
    expect((await send(n.url, req)).status).toBe(200);
    expect((await send(n.url, req)).json.error).toBe('x_memory_nonce_replay');
  });

  it('a flood of bad signatures does not grow the nonce store', async () => {
    const redis = new Redis(REDIS_URL);
    const countNonces = async () => (await redis.keys(`${n.prefix}:nonce:*`)).length;
    // The count sees the store: one genuine request adds exactly one key to it.
    const empty = await countNonces();
    expect((await send(n.url, peer.push(body()))).status).toBe(200);
    const before = await countNonces();
    expect(before).toBe(empty + 1);
    for (let i = 0; i < 200; i++) {
      const r = peer.push(body());
      r.body = Buffer.from(r.body.toString().replace('hello', `bad${i}`));
      const res = await send(n.url, r);
      expect(res.status).toBe(401);
    }
    expect(await countNonces()).toBe(before);
    redis.disconnect();
  });
});
