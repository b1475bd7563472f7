import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { validateMemory, type Memory } from '../../src/memory/model.js';
import { readAuditPage } from '../../src/store/audit.js';
import { applyReplicated } from '../../src/store/replica.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';
import { spawnMemfed } from '../helpers/process.js';

/*
 * One governed node `gov`, its policy loaded from GOVERNANCE_FILE. It is pushed to by a
 * fake peer `peer-g` and pulls (catch-up) from a real memfed node `src-p`; both peers may
 * write `shared/**` only. Each test uses its own ids.
 */
const POLICY = {
  deny_namespaces: ['secret/**'],
  max_content_bytes: 64,
  max_metadata_bytes: 96,
  peer_namespaces: { 'peer-g': ['shared/**'], 'src-p': ['shared/**'] },
};
const T0 = '2026-03-01T00:00:00.000000+00:00';
const T1 = '2026-03-02T00:00:00.000000+00:00';

let keyDir: string;
let govDb: TestDatabase;
let gov: TestNode;
let src: TestNode;
let peer: FakePeer;

const mem = (over: Record<string, unknown>): Memory => validateMemory(wireMemory({ updated_at: T0, created_at: T0, ...over }));
const stored = async (id: string) => (await govDb.database.sql`SELECT namespace, doc->>'content' AS content, deleted_at FROM memories WHERE id = ${id}`)[0];
const skippedReason = (r: { json: { results: Array<{ id: string; status: string; reason?: string }> } }, id: string) => r.json.results.find((x) => x.id === id && x.status === 'skipped')?.reason;

/** Audit events in gov's chain, decoded. */
async function chainEvents(): Promise<Array<{ kind: string; actor?: string; details: Record<string, any> }>> {
  const entries = await readAuditPage(govDb.database.db, 1, 10_000);
  return entries.map((e) => JSON.parse(e.canonical));
}

beforeAll(async () => {
  keyDir = newKeyDir();
  await ensureOwnKey(keyDir, 'gov');
  await ensureOwnKey(keyDir, 'src-p');
  peer = await new FakePeer('peer-g').init();
  peer.enrolIn(keyDir);
  const policyFile = path.join(keyDir, 'policy.json');
  writeFileSync(policyFile, JSON.stringify(POLICY));
  // Memories that were stored here before the policy existed (or by an operator).
  govDb = await createTestDatabase();
  await applyReplicated(govDb.database.db, {
    memories: [
      mem({ id: 'sealed-1', namespace: 'secret/old', content: 'sealed' }),
      mem({ id: 'pull-moved', namespace: 'private/notes', content: 'mine' }),
      mem({ id: 'pull-deleted', namespace: 'private/notes', content: 'mine' }),
    ],
    tombstones: [],
    originPeer: null,
  });
  src = await startTestNode({ id: 'src-p', keyDir });
  gov = await startTestNode({ id: 'gov', keyDir, db: govDb, peers: [{ id: 'src-p', url: src.url }], env: { GOVERNANCE_FILE: policyFile, CATCHUP_INTERVAL_MS: '500' } });
});
afterAll(async () => {
  await gov?.destroy();
  await src?.destroy();
});

describe('governance of updates that move a memory between namespaces', () => {
  it('refuses a peer re-pushing a protected memory under a namespace it may write, and audits it', async () => {
    expect((await api(gov.url, 'POST', '/api/v1/memories', { id: 'guarded-1', title: 'mine', content: 'private', namespace: 'private/notes' })).status).toBe(201);
    const moved = wireMemory({ id: 'guarded-1', namespace: 'shared/x', content: 'overwritten', updated_at: '2026-12-01T00:00:00.000000+00:00' });
    const control = wireMemory({ id: 'move-control-1', namespace: 'shared/x' });
    const r = await send(gov.url, peer.push({ sender_agent_id: 'peer-g', memories: [moved, control] }));
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ applied: 1, skipped: 1 });
    expect(skippedReason(r, 'guarded-1')).toMatch(/^GOVERNANCE_PEER_NAMESPACE: peer peer-g may not write namespace private\/notes/);
    expect(await stored('guarded-1')).toMatchObject({ namespace: 'private/notes', content: 'private', deleted_at: null });
    const events = await waitFor(async () => {
      const e = (await chainEvents()).filter((x) => x.kind === 'governance.refused' && x.details.via === 'push' && x.details.rows?.some((row: { id: string }) => row.id === 'guarded-1'));
      return e.length > 0 ? e : undefined;
    }, { what: 'the refusal in the audit chain' });
    expect(events[0]!.actor).toBe('peer-g');
    expect(events[0]!.details.rows.find((row: { id: string }) => row.id === 'guarded-1')).toMatchObject({ code: 'GOVERNANCE_PEER_NAMESPACE', rule: 'peer_namespaces.peer-g', lane: 'memories' });
  });

  it('refuses a peer moving a memory it may write into a namespace it may not, and allows moves within its own', async () => {
    const v1 = wireMemory({ id: 'peer-own-1', namespace: 'shared/a', updated_at: T0 });
    expect((await send(gov.url, peer.push({ sender_agent_id: 'peer-g', memories: [v1] }))).json).toMatchObject({ applied: 1 });
    const out = await send(gov.url, peer.push({ sender_agent_id: 'peer-g', memories: [{ ...v1, namespace: 'private/b', updated_at: T1 }] }));
    expect(skippedReason(out, 'peer-own-1')).toMatch(/^GOVERNANCE_PEER_NAMESPACE/);
    expect((await stored('peer-own-1'))!.namespace).toBe('shared/a');
    const within = await send(gov.url, peer.push({ sender_agent_id: 'peer-g', memories: [{ ...v1, namespace: 'shared/b', updated_at: T1 }] }));
    expect(within.json).toMatchObject({ applied: 1, skipped: 0 });
    expect((await stored('peer-own-1'))!.namespace).toBe('shared/b');
  });

  it('a memory stored in a denied namespace is moved out neither by a peer nor by a local update', async () => {
    const out = await send(gov.url, peer.push({ sender_agent_id: 'peer-g', memories: [wireMemory({ id: 'sealed-1', namespace: 'shared/x', content: 'out', updated_at: T1 })] }));
    expect(skippedReason(out, 'sealed-1')).toMatch(/^GOVERNANCE_NAMESPACE_DENIED: namespace secret\/old is not writable here/);
    const local = await api(gov.url, 'PUT', '/api/v1/memories/sealed-1', { namespace: 'global' });
    expect(local.status).toBe(403);
    expect(local.json).toMatchObject({ code: 'GOVERNANCE_REFUSED', rule: 'deny_namespaces[0]', reason_code: 'GOVERNANCE_NAMESPACE_DENIED' });
    expect(await stored('sealed-1')).toMatchObject({ namespace: 'secret/old', content: 'sealed' });
    // peer_namespaces bind peers only: a local client may move its own memory.
    await api(gov.url, 'POST', '/api/v1/memories', { id: 'local-move-1', title: 't', content: 'c', namespace: 'private/a' });
    expect((await api(gov.url, 'PUT', '/api/v1/memories/local-move-1', { namespace: 'private/b' })).status).toBe(200);
  });
});

describe('size caps from GOVERNANCE_FILE', () => {
  it('max_content_bytes counts UTF-8 bytes and refuses local writes and pushed rows over it', async () => {
    expect((await api(gov.url, 'POST', '/api/v1/memories', { title: 't', content: 'x'.repeat(64) })).status).toBe(201);
    // 33 characters but 66 bytes
    const over = await api(gov.url, 'POST', '/api/v1/memories', { title: 't', content: 'é'.repeat(33) });
    expect(over.status).toBe(403);
    expect(over.json).toMatchObject({ code: 'GOVERNANCE_REFUSED', rule: 'max_content_bytes', reason_code: 'GOVERNANCE_CONTENT_TOO_LARGE' });
    const pushed = await send(gov.url, peer.push({ sender_agent_id: 'peer-g', memories: [wireMemory({ id: 'big-content-1', namespace: 'shared/x', content: 'y'.repeat(65) })] }));
    expect(skippedReason(pushed, 'big-content-1')).toMatch(/^GOVERNANCE_CONTENT_TOO_LARGE: content exceeds 64 bytes/);
    expect(await stored('big-content-1')).toBeUndefined();
  });

  it('max_metadata_bytes refuses local writes and pushed rows whose serialized metadata is over it', async () => {
    const over = await api(gov.url, 'POST', '/api/v1/memories', { title: 't', content: 'c', metadata: { note: 'z'.repeat(100) } });
    expect(over.status).toBe(403);
    expect(over.json).toMatchObject({ rule: 'max_metadata_bytes', reason_code: 'GOVERNANCE_METADATA_TOO_LARGE' });
    expect((await api(gov.url, 'POST', '/api/v1/memories', { title: 't', content: 'c', metadata: { note: 'small' } })).status).toBe(201);
    const pushed = await send(gov.url, peer.push({ sender_agent_id: 'peer-g', memories: [wireMemory({ id: 'big-meta-1', namespace: 'shared/x', metadata: { agent_id: 'a', note: 'z'.repeat(100) } })] }));
    expect(skippedReason(pushed, 'big-meta-1')).toMatch(/^GOVERNANCE_METADATA_TOO_LARGE/);
  });
});

describe('governance on pulled (catch-up) rows', () => {
  it('refuses pulled rows like pushed ones (moves, foreign namespaces, deletions), audits them and moves the watermark past them', async () => {
    // On the source: a memory gov keeps in private/notes moved to shared/x, one deleted,
    // one in a namespace src-p may not write, and one it may (written last, same commit).
    const later = '2026-04-01T00:00:00.000000+00:00';
    await applyReplicated(src.db.database.db, {
      memories: [
        mem({ id: 'pull-moved', namespace: 'shared/x', content: 'taken', updated_at: later }),
        mem({ id: 'pull-foreign', namespace: 'private/y', content: 'c' }),
        mem({ id: 'pull-ok', namespace: 'shared/z', content: 'c' }),
      ],
      tombstones: [{ id: 'pull-deleted', deleted_at: later }],
      originPeer: null,
    });
    await waitFor(async () => (await stored('pull-ok')) !== undefined, { timeoutMs: 30_000, what: 'the admitted row pulled' });
    expect(await stored('pull-moved')).toMatchObject({ namespace: 'private/notes', content: 'mine', deleted_at: null });
    expect(await stored('pull-deleted')).toMatchObject({ namespace: 'private/notes', deleted_at: null });
    expect(await stored('pull-foreign')).toBeUndefined();
    // a refusal is on purpose: the watermark moves on, no halt
    const [wm] = await govDb.database.sql`SELECT cursor, last_error FROM peer_watermarks WHERE peer_id = 'src-p'`;
    expect(wm!.last_error).toBeNull();
    expect(wm!.cursor).toMatch(/^v1\./);
    const refused = await waitFor(async () => {
      const rows = (await chainEvents()).filter((x) => x.kind === 'governance.refused' && x.details.via === 'catchup').flatMap((x) => x.details.rows as Array<{ id: string; code: string; lane: string }>);
      return ['pull-moved', 'pull-deleted', 'pull-foreign'].every((id) => rows.some((r) => r.id === id)) ? rows : undefined;
    }, { what: 'catch-up refusals in the audit chain' });
    expect(refused.find((r) => r.id === 'pull-moved')).toMatchObject({ code: 'GOVERNANCE_PEER_NAMESPACE', lane: 'memories' });
    expect(refused.find((r) => r.id === 'pull-deleted')).toMatchObject({ code: 'GOVERNANCE_PEER_NAMESPACE', lane: 'tombstones' });
    expect(refused.some((r) => r.id === 'pull-ok')).toBe(false);
    // ...and recorded where the operator re-applies them from, the deletion in its own lane
    const recorded = await govDb.database.sql`SELECT memory_id, lane, code, status FROM catchup_refusals WHERE peer_id = 'src-p' ORDER BY memory_id`;
    expect(recorded.map((r) => [r.memory_id, r.lane, r.code, r.status])).toEqual([
      ['pull-deleted', 'tombstones', 'GOVERNANCE_PEER_NAMESPACE', 'pending'],
      ['pull-foreign', 'memories', 'GOVERNANCE_PEER_NAMESPACE', 'pending'],
      ['pull-moved', 'memories', 'GOVERNANCE_PEER_NAMESPACE', 'pending'],
    ]);
  });
});

describe('an invalid governance policy', () => {
  const env = (extra: Record<string, string>) => ({ NODE_ID: 'bad-policy', DATABASE_URL: govDb.url, FED_KEY_DIR: newKeyDir(), HTTP_PORT: '0', LOG_LEVEL: 'warn', ...extra });

  it('stops the process at start with the offending field named', async () => {
    const p = spawnMemfed(['api'], env({ GOVERNANCE_POLICY: JSON.stringify({ deny_namespaces: 'secret/**', max_content_bytes: 0 }) }));
    expect(await p.exited).not.toBe(0);
    expect(p.output()).toMatch(/governance policy \(GOVERNANCE_POLICY\) is invalid: .*deny_namespaces/);
    expect(p.output()).toMatch(/max_content_bytes/);
    expect(p.output()).not.toContain('api listening');
  });

  it('stops the process at start when GOVERNANCE_FILE is not JSON or does not exist', async () => {
    const file = path.join(newKeyDir(), 'policy.json');
    writeFileSync(file, '{"deny_namespaces": [');
    const bad = spawnMemfed(['api'], env({ GOVERNANCE_FILE: file }));
    expect(await bad.exited).not.toBe(0);
    expect(bad.output()).toContain(`governance policy (${file}) is not valid JSON`);
    const missing = spawnMemfed(['api'], env({ GOVERNANCE_FILE: `${file}.missing` }));
    expect(await missing.exited).not.toBe(0);
    expect(missing.output()).toMatch(/ENOENT.*policy\.json\.missing/);
  });
});
