import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { spawnMemfed } from '../helpers/process.js';

// CLI conventions: a usage error is one line on stderr and exit 2 (never a stack, never a
// silent exit 0); every command has --help (exit 0); flags are judged by the admin API's
// own rules.

let db: TestDatabase;
let env: Record<string, string>;
let node: TestNode;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { NODE_ID: 'cli-conventions', DATABASE_URL: db.url, REDIS_URL, FED_KEY_DIR: newKeyDir(), FED_PEERS: 'known-peer=http://127.0.0.1:9', LOG_LEVEL: 'warn' };
  node = await startTestNode({ id: 'cli-admin', role: 'api', peers: [{ id: 'known-peer', url: 'http://127.0.0.1:9' }], env: { ADMIN_TOKEN: 'adm' } });
});
afterAll(async () => {
  await node?.destroy();
  await db?.drop();
});

const run = async (args: string[]) => {
  const p = spawnMemfed(args, env);
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.output().replace(p.stdout(), '') };
};

describe('usage errors', () => {
  const cases: Array<[string[], RegExp]> = [
    [['dlq', 'list', '--status', 'bogus'], /^memfed: dlq list: --status must be one of pending, quarantined, replayed, purged, superseded$/],
    [['dlq', 'list', '--limit', 'abc'], /^memfed: dlq list: --limit /],
    [['dlq', 'list', '--nope'], /^memfed: dlq list: Unknown option '--nope'$/],
    [['dlq', 'list', '--limit'], /^memfed: dlq list: Option '--limit <value>' argument missing$/],
    [['dlq', 'requeue', '--id', 'x'], /^memfed: dlq requeue: --id expects a positive integer, got "x"$/],
    [['dlq', 'requeue'], /^memfed: dlq requeue: needs --all, --peer or --id$/],
    [['dlq', 'replay', '--peer', 'nosuchpeer'], /^memfed: dlq replay: UNKNOWN_PEER: peer nosuchpeer is not configured/],
    [['dlq', 'frobnicate'], /^memfed: dlq: unknown command "frobnicate"/],
    [['peers'], /^memfed: peers: a command is required \(list, show, add, pause, resume, remove, update, rekey, purge; memfed peers --help\)$/],
    [['peers', 'pause'], /^memfed: peers pause: --id is required$/],
    [['peers', 'pause', '--id', 'a/b'], /^memfed: peers pause: INVALID_PEER: /],
    [['peers', 'add', '--id', 'p1'], /^memfed: peers add: INVALID_PEER: url is required$/],
    [['peers', 'add', '--id', 'p1', '--url', 'ftp://h'], /^memfed: peers add: INVALID_PEER: bad peer URL/],
    [['peers', 'add', '--id', 'p1', '--url', 'http://h', '--flavour', 'bogus'], /^memfed: peers add: INVALID_PEER: unknown flavour "bogus"/],
    [['peers', 'add', '--id', 'cli-conventions', '--url', 'http://h'], /^memfed: peers add: INVALID_PEER: peer id "cli-conventions" is this node's own id/],
    [['peers', 'add', '--id', 'p1', '--url', 'http://h', '--key', 'AAAA'], /^memfed: peers add: INVALID_KEY: /],
    [['peers', 'add', '--id', 'p1', '--url', 'http://h', '--key-file', '/nonexistent/p1.pub'], /^memfed: peers add: cannot read --key-file \/nonexistent\/p1.pub: ENOENT$/],
    [['peers', 'add', '--id', 'p1', '--url', 'http://h', '--key', 'x', '--key-file', 'y'], /^memfed: peers add: give --key-file or --key, not both$/],
    [['peers', 'rekey', '--id', 'p1'], /^memfed: peers rekey: needs one of --key-file, --key or --clear$/],
    [['peers', 'update', '--id', 'p1'], /^memfed: peers update: needs --url and\/or --flavour$/],
    [['peers', 'update', '--id', 'p1', '--flavour', 'x'], /^memfed: peers update: INVALID_PEER: unknown flavour "x"/],
    [['peers', 'list', '--id', 'p1'], /^memfed: peers list: --id does not apply here/],
    [['peers', 'list', '--nope'], /^memfed: peers list: Unknown option '--nope'$/],
    [['dlq'], /^memfed: dlq: a command is required/],
    [['catchup', 'refusals', 'list', '--status', 'zz'], /^memfed: catchup refusals list: --status must be one of pending, resolved$/],
    [['catchup', 'refusals', 'reapply', '--id', '-1'], /^memfed: catchup refusals reapply: /],
    [['audit', 'verify', '--from', '0'], /^memfed: audit verify: --from must be a positive integer$/],
    [['keys', 'generate'], /^memfed: keys generate: --id <agent id> is required$/],
    [['migrate', 'now'], /^memfed: migrate: takes no arguments/],
    [['alert-rules', '--runbook-base', 'wiki/memfed'], /^memfed: alert-rules: --runbook-base expected an absolute http\(s\) URL, got "wiki\/memfed"$/],
    [['alert-rules', '--runbook-base'], /^memfed: alert-rules: Option '--runbook-base <value>' argument missing$/],
    [['api', 'extra'], /^memfed: api: unexpected argument "extra"/],
    [['status', '--peer', 'x'], /^memfed: status: Unknown option '--peer'$/],
    [['status', 'now'], /^memfed: status: Unexpected argument 'now'/],
    [['bogus'], /^memfed: unknown command "bogus"/],
  ];
  for (const [args, message] of cases) {
    it(`memfed ${args.join(' ')} -> exit 2, one line`, async () => {
      const r = await run(args);
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }
});

describe('--help', () => {
  for (const args of [['peers', '--help'], ['peers', 'add', '--help'], ['dlq', '--help'], ['dlq', 'list', '--help'], ['dlq', 'purge', '-h'], ['catchup', 'refusals', 'list', '--help'], ['audit', 'verify', '--help'], ['keys', 'generate', '--help'], ['migrate', '--help'], ['status', '--help'], ['alert-rules', '--help'], ['--help']]) {
    it(`memfed ${args.join(' ')} prints the usage and exits 0`, async () => {
      const r = await run(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/memfed /);
    });
  }
});

describe('alert-rules', () => {
  it('is listed in memfed --help', async () => {
    expect((await run(['--help'])).stdout).toContain('memfed alert-rules [--runbook-base URL]');
  });

  it('memfed alert-rules --runbook-base prints the built rules with every runbook link under that base', async () => {
    const r = await run(['alert-rules', '--runbook-base', 'https://wiki.example/memfed/ops']);
    expect(r.code).toBe(0);
    const urls = [...r.stdout.matchAll(/runbook_url: (\S+)/g)].map((m) => m[1]!);
    expect(urls.length).toBeGreaterThan(20);
    for (const u of urls) expect(u).toMatch(/^https:\/\/wiki\.example\/memfed\/ops#alert-memfed[a-z]+$/);
  });
});

describe('the same rules as the admin API', () => {
  const admin = (method: string, path: string, body?: unknown) => api(node.url, method, path, body, { authorization: 'Bearer adm' });
  it('refuses the same status and unknown peer', async () => {
    const list = await admin('GET', '/api/v1/admin/dlq?status=bogus');
    expect(list.status).toBe(400);
    expect(list.json.error).toBe('status must be one of pending, quarantined, replayed, purged, superseded');
    expect((await run(['dlq', 'list', '--status', 'bogus'])).stderr).toContain(list.json.error.replace('status', '--status'));
    const replay = await admin('POST', '/api/v1/admin/dlq/replay', { peer: 'nosuchpeer' });
    expect(replay).toMatchObject({ status: 400, json: { code: 'UNKNOWN_PEER' } });
    expect((await run(['dlq', 'replay', '--peer', 'nosuchpeer'])).code).toBe(2);
    // a configured peer is accepted by both
    expect((await admin('POST', '/api/v1/admin/dlq/replay', { peer: 'known-peer' })).status).toBe(202);
    // a paused peer is refused by both, with the same code and message (nothing would be sent)
    expect((await admin('POST', '/api/v1/admin/peers/known-peer/pause')).status).toBe(200);
    try {
      const paused = await admin('POST', '/api/v1/admin/dlq/replay', { peer: 'known-peer' });
      expect(paused).toMatchObject({ status: 409, json: { code: 'PEER_NOT_ACTIVE' } });
      // The CLI judges by its own database's peers table (the node above has another).
      expect((await run(['peers', 'add', '--id', 'known-peer', '--url', 'http://127.0.0.1:9'])).code).toBe(0);
      expect((await run(['peers', 'pause', '--id', 'known-peer'])).code).toBe(0);
      const cli = await run(['dlq', 'replay', '--peer', 'known-peer']);
      expect(cli.code).toBe(1);
      expect(cli.stderr.trim()).toBe(`memfed: dlq replay: PEER_NOT_ACTIVE: ${paused.json.error}`);
    } finally {
      await admin('POST', '/api/v1/admin/peers/known-peer/resume');
    }
  });

  it('refuses the same peer input, and the same unknown peer (404 / exit 1)', async () => {
    const bad = await admin('POST', '/api/v1/admin/peers', { id: 'p1', url: 'ftp://h' });
    expect(bad).toMatchObject({ status: 400, json: { code: 'INVALID_PEER' } });
    expect((await run(['peers', 'add', '--id', 'p1', '--url', 'ftp://h'])).stderr).toContain(`INVALID_PEER: ${bad.json.error}`);
    const unknown = await admin('POST', '/api/v1/admin/peers/nosuch/pause');
    expect(unknown).toMatchObject({ status: 404, json: { code: 'UNKNOWN_PEER' } });
    const cli = await run(['peers', 'pause', '--id', 'nosuch']);
    expect(cli.code).toBe(1);
    expect(cli.stderr.trim()).toBe(`memfed: peers pause: UNKNOWN_PEER: ${unknown.json.error}`);
  });
});
