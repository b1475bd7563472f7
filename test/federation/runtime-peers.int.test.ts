import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { freePort, waitFor } from '../helpers/env.js';
import { api, newKeyDir } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';
import { startProcessMesh, type MeshProcess } from '../helpers/process-mesh.js';
import { spawnMemfed, waitHealthy, type NodeProcess } from '../helpers/process.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';

/*
 * Peers at runtime against real `memfed all` processes: the CLI changes a node's peer
 * list in its database and every process of the node follows within seconds, without a
 * restart. One scenario in order (pause, resume, a fourth node joins, a node is removed),
 * as an operator would run it.
 */

let mesh: Awaited<ReturnType<typeof startProcessMesh>>;
let a: MeshProcess, b: MeshProcess, c: MeshProcess;
let d: { url: string; env: Record<string, string>; db: TestDatabase; proc: NodeProcess; keyDir: string; prefix: string } | undefined;

// Within the documented bound (a poll every 2 s; the NOTIFY usually makes it immediate).
const FOLLOW_MS = 2_500;
const settle = () => new Promise((r) => setTimeout(r, FOLLOW_MS));

async function memfed(env: Record<string, string>, ...args: string[]) {
  const p = spawnMemfed(['peers', ...args], env);
  const code = await p.exited;
  return { code, out: p.stdout(), err: p.output().replace(p.stdout(), '') };
}
const peersOf = async (env: Record<string, string>) => JSON.parse((await memfed(env, 'list', '--json')).out) as Array<{ id: string; state: string; key_id: string | null }>;
const holds = (url: string, id: string) => api(url, 'GET', `/api/v1/memories/${id}`).then((r) => r.status === 200);
const write = (url: string, title: string) => api(url, 'POST', '/api/v1/memories', { title, content: title, tags: ['runtime-peers'] });
const cursorOf = async (n: { db: TestDatabase }, peer: string) => (await n.db.database.sql`SELECT txid::text || '.' || seq::text AS at FROM peer_cursors WHERE peer_id = ${peer}`)[0]?.at as string | undefined;

beforeAll(async () => {
  // W=2 so that pausing both peers of a node shows in its answers; pulls are left to the
  // schedulers' own follow-ups (a long interval: a tick must not deliver what a pause holds).
  mesh = await startProcessMesh(3, { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '15000', CATCHUP_INTERVAL_MS: '600000' });
  [a, b, c] = mesh.nodes as [MeshProcess, MeshProcess, MeshProcess];
}, 120_000);
afterAll(async () => {
  if (d) {
    await d.proc.stop();
    await d.db.drop();
    await dropPrefix(d.prefix);
  }
  await mesh?.destroy();
});

describe('memfed peers against a running three-node mesh', () => {
  it('FED_PEERS seeded every node: each lists its two peers, active', async () => {
    const list = await peersOf(a.env);
    expect(list.map((p) => [p.id, p.state])).toEqual([
      ['proc-b', 'active'],
      ['proc-c', 'active'],
    ]);
  });

  it('pause: nothing is sent to the paused peer and its cursor holds; a W=2 write with both peers paused answers quorum_not_met; resume: it catches up', async () => {
    // b could receive a's write from a, or relayed by c: pause it on both.
    for (const n of [a, c]) expect((await memfed(n.env, 'pause', '--id', 'proc-b')).code).toBe(0);
    expect((await peersOf(a.env)).find((p) => p.id === 'proc-b')?.state).toBe('paused');
    // memfed status shows it paused (the CLI's report from the table, and the admin route's).
    const status = spawnMemfed(['status', '--json'], a.env);
    expect(await status.exited).toBe(0);
    const states = (JSON.parse(status.stdout()) as { peers: Array<{ id: string; state: string }> }).peers.map((p) => [p.id, p.state]);
    expect(states).toEqual([['proc-b', 'paused'], ['proc-c', 'active']]);
    await settle();
    const before = await cursorOf(a, 'proc-b');
    const w = await write(a.url, 'while b is paused');
    expect(w.status).toBe(201);
    expect(w.json.quorum_acks).toBe(2); // a and c
    await waitFor(() => holds(c.url, w.json.id), { what: 'c holds the write' });
    // c has it and has had time to relay it (reconcile every 500 ms): b still does not.
    await waitFor(async () => (await cursorOf(c, 'proc-a')) !== undefined && (await holds(c.url, w.json.id)));
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await holds(b.url, w.json.id)).toBe(false);
    expect(await cursorOf(a, 'proc-b')).toBe(before);

    // The only other peer paused as well: counted unavailable, as a peer that is down.
    expect((await memfed(a.env, 'pause', '--id', 'proc-c')).code).toBe(0);
    await settle();
    const lonely = await write(a.url, 'both peers paused');
    expect(lonely.status).toBe(503);
    expect(lonely.json).toMatchObject({ code: 'QUORUM_NOT_MET', needed: 2, got: 1, reason: 'unreachable' });
    expect((await memfed(a.env, 'resume', '--id', 'proc-c')).code).toBe(0);

    for (const n of [a, c]) expect((await memfed(n.env, 'resume', '--id', 'proc-b')).code).toBe(0);
    await waitFor(() => holds(b.url, w.json.id), { what: 'b catches up after resume', timeoutMs: 20_000 });
    await waitFor(() => holds(b.url, lonely.json.id), { what: 'b gets the write made while all peers of a were paused', timeoutMs: 20_000 });
    expect(await cursorOf(a, 'proc-b')).not.toBe(before);
  });

  it('a fourth node added at runtime on every side converges; removed on a, its requests are refused', async () => {
    // d: its own database and key dir; FED_PEERS empty: it learns its peers from the CLI.
    const keyDir = newKeyDir();
    await ensureOwnKey(keyDir, 'proc-d');
    const db = await createTestDatabase();
    const prefix = uniquePrefix();
    const port = await freePort();
    const env: Record<string, string> = { ...a.env, NODE_ID: 'proc-d', HTTP_PORT: String(port), DATABASE_URL: db.url, QUEUE_PREFIX: prefix, FED_KEY_DIR: keyDir, FED_PEERS: '' };
    d = { url: `http://127.0.0.1:${port}`, env, db, proc: spawnMemfed(['all'], env), keyDir, prefix };
    await waitHealthy(d.url);
    const dPub = path.join(keyDir, 'proc-d.pub');
    const meshKeys = a.env.FED_KEY_DIR!;
    // Enrol d on a, b, c (its key from the raw .pub file) and a, b, c on d (base64 from the file).
    for (const n of [a, b, c]) {
      const r = await memfed(n.env, 'add', '--id', 'proc-d', '--url', d.url, '--key-file', dPub);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain('added proc-d');
      const k = await memfed(d.env, 'add', '--id', n.id, '--url', n.url, '--key', readFileSync(path.join(meshKeys, `${n.id}.pub`)).toString('base64'));
      expect(k.code, k.err).toBe(0);
    }
    expect((await peersOf(d.env)).map((p) => p.id)).toEqual(['proc-a', 'proc-b', 'proc-c']);
    expect((await peersOf(a.env)).find((p) => p.id === 'proc-d')?.key_id).toMatch(/^[0-9a-f]{16}$/);

    // Everything written before d joined reaches it, and its own writes reach the mesh.
    const existing = (await a.db.database.sql`SELECT count(*)::int AS n FROM memories`)[0]!.n as number;
    await waitFor(async () => ((await d!.db.database.sql`SELECT count(*)::int AS n FROM memories`)[0]!.n as number) >= existing, { what: 'd converges', timeoutMs: 30_000 });
    const fromD = await write(d.url, 'written on d');
    expect(fromD.status).toBe(201);
    expect(fromD.json.quorum_acks).toBeGreaterThanOrEqual(2);
    for (const n of [a, b, c]) await waitFor(() => holds(n.url, fromD.json.id), { what: `${n.id} holds d's write`, timeoutMs: 20_000 });

    // Removed on a: a refuses d by name, signed with its enrolled key or not.
    const rm = await memfed(a.env, 'remove', '--id', 'proc-d');
    expect(rm.code, rm.err).toBe(0);
    expect((await peersOf(a.env)).find((p) => p.id === 'proc-d')?.state).toBe('removed');
    await settle();
    const asD = await new FakePeer('proc-d', readFileSync(path.join(keyDir, 'proc-d.priv'))).init();
    const pushed = await send(a.url, asD.push({ sender_agent_id: 'proc-d', memories: [wireMemory()] }));
    expect(pushed).toMatchObject({ status: 403, json: { error: 'peer_removed', code: 'PEER_REMOVED' } });
    // d's own pusher meets the same refusal (recorded on its cursor for a); b and c still take d's writes.
    const later = await write(d.url, 'after removal on a');
    expect(later.status).toBe(201);
    await waitFor(async () => (await d!.db.database.sql`SELECT last_error FROM peer_cursors WHERE peer_id = 'proc-a'`)[0]?.last_error?.includes('peer_removed'), { what: "d's pushes to a refused", timeoutMs: 20_000 });
    await waitFor(() => holds(b.url, later.json.id), { what: 'b still takes d' });
    // The cursor is kept until purged; a removed peer cannot be paused or resumed.
    expect(await cursorOf(a, 'proc-d')).toBeDefined();
    const resume = await memfed(a.env, 'resume', '--id', 'proc-d');
    expect(resume.code).toBe(1);
    expect(resume.err).toMatch(/^memfed: peers resume: PEER_REMOVED: /);
  });
});
