import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyFiles } from '../../src/federation/keys.js';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';

let n: TestNode | undefined;
afterAll(async () => {
  await n?.destroy();
});

describe('rotating a node key', () => {
  it('records key.changed once and keeps the old entries verifiable through retired/', async () => {
    const keyDir = newKeyDir();
    const env = { ADMIN_TOKEN: 'tok' };
    n = await startTestNode({ id: 'rotor', keyDir, env });
    const c = await api(n.url, 'POST', '/api/v1/memories', { title: 'x', content: 'y' });
    await api(n.url, 'DELETE', `/api/v1/memories/${c.json.id}`);
    await waitFor(async () => Number((await n!.db.database.sql`SELECT count(*)::int AS n FROM audit_log`)[0]!.n) >= 2, { what: 'entries under the first key' });
    await n.stop();
    // Rotate: retire the old public key, generate a new pair.
    mkdirSync(path.join(keyDir, 'retired'), { recursive: true });
    copyFileSync(path.join(keyDir, 'rotor.pub'), path.join(keyDir, 'retired', 'rotor.2026-11.pub'));
    await generateKeyFiles(keyDir, 'rotor', { overwrite: true });
    // A fresh port: re-binding the one just released can collide.
    n = await startTestNode({ id: 'rotor', keyDir, env, db: n.db, prefix: n.prefix });
    const rotated = await waitFor(async () => {
      const rows = await n!.db.database.sql`SELECT canonical FROM audit_log WHERE kind = 'key.changed'`;
      const r = rows.map((x) => JSON.parse(x.canonical as string)).filter((e) => e.details.action === 'rotated');
      return r.length ? r : undefined;
    }, { what: 'key.changed rotated' });
    expect(rotated).toHaveLength(1);
    expect(rotated[0].details.previous_key_trusted).toBe(true);
    const v = await api(n.url, 'GET', '/api/v1/admin/audit/verify', undefined, { authorization: 'Bearer tok' });
    expect(v.json).toMatchObject({ ok: true });
    const keyIds = (await n.db.database.sql`SELECT DISTINCT key_id FROM audit_log`).map((r) => r.key_id);
    expect(keyIds.length).toBe(2);
  });
});
