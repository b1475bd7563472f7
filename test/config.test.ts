import os from 'node:os';
import { describe, it, expect } from 'vitest';
import { CONFIG_VARIABLES, ConfigError, describeConfig, federationEnabled, loadConfig, type Config } from '../src/config.js';
import { loadPolicy } from '../src/governance.js';
import { loadTls } from '../src/tls.js';
import { skipNote } from './helpers/skip.js';

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

const base = { NODE_ID: 'node-a' };

describe('loadConfig defaults', () => {
  it('uses the documented defaults for an empty environment', () => {
    const c = loadConfig({ ...base });
    expect(c.nodeId).toBe('node-a');
    expect(c.http).toEqual({ host: '127.0.0.1', port: 9077 });
    expect(c.workerHttpPort).toBe(9177);
    expect(c.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/memfed');
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.queuePrefix).toBe('memfed');
    expect(c.federation.peers).toEqual([]);
    expect(c.federation.quorumW).toBe(1);
    expect(c.federation.ackTimeoutMs).toBe(2000);
    expect(c.federation.requireSig).toBe(true);
    expect(c.federation.clockSkewMs).toBe(300_000);
    expect(c.push.batchMax).toBe(500);
    expect(c.catchup.intervalMs).toBe(30_000);
    expect(c.dlq).toEqual({ replayIntervalMs: 30_000, maxReplayAttempts: 100, replayMaxBatch: 2048, runBudgetMs: 20_000 });
    expect(c.workerQueues).toEqual(['push', 'dlq', 'catchup', 'audit', 'expiry', 'retention', 'repair']);
    expect(c.apiKey).toBe('');
    expect(c.logLevel).toBe('info');
  });

  it('treats empty strings as unset', () => {
    const c = loadConfig({ ...base, HTTP_PORT: '', REDIS_URL: '', FED_REQUIRE_SIG: '', QUEUE_PREFIX: '' });
    expect(c.http.port).toBe(9077);
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.federation.requireSig).toBe(true);
    expect(c.queuePrefix).toBe('memfed');
  });

  const hostIsId = /^[A-Za-z0-9_\-:@./]{1,123}$/.test(os.hostname());
  it.skipIf(!hostIsId)(`derives NODE_ID from the host name${skipNote(!hostIsId, 'this host name is not a valid node id')}`, () => {
    expect(loadConfig({}).nodeId).toBe(`host:${os.hostname()}`);
  });

  it('reads explicit values', () => {
    const c = loadConfig({ ...base, HTTP_HOST: '0.0.0.0', HTTP_PORT: '8080', DATABASE_URL: 'postgresql://u@db/x', REDIS_URL: 'rediss://r:6380', PUSH_BATCH_MAX: '1000', LOG_LEVEL: 'debug' });
    expect(c.http).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(c.databaseUrl).toBe('postgresql://u@db/x');
    expect(c.redisUrl).toBe('rediss://r:6380');
    expect(c.push.batchMax).toBe(1000);
    expect(c.logLevel).toBe('debug');
  });
});

describe('FED_PEERS', () => {
  it('parses id=url pairs and strips trailing slashes', () => {
    const c = loadConfig({ ...base, FED_PEERS: 'a=http://x:1,b=http://y:2/' });
    expect(c.federation.peers).toEqual([{ id: 'a', url: 'http://x:1', flavour: 'memfed' }, { id: 'b', url: 'http://y:2', flavour: 'memfed' }]);
    expect(federationEnabled(c)).toBe(true);
  });

  it('tolerates spaces, empty entries and several trailing slashes, keeps paths', () => {
    const c = loadConfig({ ...base, FED_PEERS: ' a = https://x.example/base// , , host:b@1=http://10.0.0.2:9077 ' });
    expect(c.federation.peers).toEqual([{ id: 'a', url: 'https://x.example/base', flavour: 'memfed' }, { id: 'host:b@1', url: 'http://10.0.0.2:9077', flavour: 'memfed' }]);
  });

  it('reads ";"-separated options: the documented flavour form, exactly', () => {
    const c = loadConfig({ ...base, FED_PEERS: 'host:a=http://127.0.0.1:9081;flavour=ai-memory-0.7,host:b=http://127.0.0.1:9082' });
    expect(c.federation.peers).toEqual([
      { id: 'host:a', url: 'http://127.0.0.1:9081', flavour: 'ai-memory-0.7' },
      { id: 'host:b', url: 'http://127.0.0.1:9082', flavour: 'memfed' },
    ]);
    // explicit default, spaces, a trailing ';' and a trailing slash before the options
    expect(loadConfig({ ...base, FED_PEERS: 'a=http://x:1/ ; flavour = memfed ;' }).federation.peers).toEqual([{ id: 'a', url: 'http://x:1', flavour: 'memfed' }]);
  });

  it('refuses unknown options, unknown flavours, empty and repeated options', () => {
    const cases: Array<[string, RegExp]> = [
      ['a=http://x:1;flavor=memfed', /unknown option "flavor" in peer entry "a=http:\/\/x:1;flavor=memfed" \(known: flavour\)/],
      ['a=http://x:1;flavour=ai-memory-0.6', /unknown flavour "ai-memory-0.6" in "a=http:\/\/x:1;flavour=ai-memory-0.6" \(known: memfed, ai-memory-0.7\)/],
      ['a=http://x:1;flavour=', /option "flavour" needs a value/],
      ['a=http://x:1;flavour', /option "flavour" needs a value/],
      ['a=http://x:1;flavour=memfed;flavour=ai-memory-0.7', /option "flavour" given twice/],
    ];
    for (const [peers, error] of cases) {
      const err = configError({ ...base, FED_PEERS: peers });
      expect(err.problems, peers).toHaveLength(1);
      expect(err.problems[0], peers).toMatch(/^FED_PEERS: /);
      expect(err.problems[0], peers).toMatch(error);
    }
  });

  it('no peers: federation off', () => {
    expect(federationEnabled(loadConfig({ ...base }))).toBe(false);
  });

  it('refuses duplicates', () => {
    const err = configError({ ...base, FED_PEERS: 'a=http://x:1,a=http://y:2' });
    expect(err.problems.some((p) => p.startsWith('FED_PEERS') && p.includes('"a" listed twice'))).toBe(true);
  });

  it('refuses bad URLs', () => {
    for (const peers of ['a=ftp://x:1', 'a=not a url', 'a=', 'a=//x:1']) {
      const err = configError({ ...base, FED_PEERS: peers });
      expect(err.problems.some((p) => p.startsWith('FED_PEERS') && p.includes('bad peer URL')), peers).toBe(true);
    }
  });

  it('refuses bad ids', () => {
    for (const peers of ['bad id=http://x:1', '=http://x:1', 'http://x:1', 'a#b=http://x:1', `${'x'.repeat(129)}=http://x:1`]) {
      const err = configError({ ...base, FED_PEERS: peers });
      expect(err.problems.some((p) => p.startsWith('FED_PEERS') && p.includes('bad peer entry')), peers).toBe(true);
    }
  });

  it('refuses listing this node itself', () => {
    const err = configError({ NODE_ID: 'self', FED_PEERS: 'other=http://x:1,self=http://y:2' });
    expect(err.problems).toContain('FED_PEERS: lists this node itself (NODE_ID)');
  });
});

describe('quorum W', () => {
  const peers2 = 'a=http://x:1,b=http://y:2';

  it('is clamped to [1, 1 + peers]', () => {
    expect(loadConfig({ ...base, FED_QUORUM_W: '3' }).federation.quorumW).toBe(1);
    expect(loadConfig({ ...base, FED_PEERS: peers2, FED_QUORUM_W: '5' }).federation.quorumW).toBe(3);
    expect(loadConfig({ ...base, FED_PEERS: peers2, FED_QUORUM_W: '3' }).federation.quorumW).toBe(3);
    expect(loadConfig({ ...base, FED_PEERS: peers2, FED_QUORUM_W: '2' }).federation.quorumW).toBe(2);
    expect(loadConfig({ ...base, FED_PEERS: peers2 }).federation.quorumW).toBe(1);
  });

  it('refuses non-integers and values above 64', () => {
    // 0 would mean "federation off" upstream; memfed refuses it (unset FED_PEERS instead).
    for (const w of ['0', '1.5', 'two', '65', '-1']) {
      expect(configError({ ...base, FED_QUORUM_W: w }).problems.some((p) => p.startsWith('FED_QUORUM_W')), w).toBe(true);
    }
  });
});

describe('booleans', () => {
  it.each([
    ['true', true], ['TRUE', true], [' yes ', true], ['1', true], ['on', true],
    ['false', false], ['False', false], ['no', false], ['0', false], ['off', false],
  ])('FED_REQUIRE_SIG=%j -> %s', (v, expected) => {
    expect(loadConfig({ ...base, FED_REQUIRE_SIG: v }).federation.requireSig).toBe(expected);
  });

  it.each(['maybe', '2', 'y', 'truee'])('refuses FED_REQUIRE_SIG=%j', (v) => {
    const err = configError({ ...base, FED_REQUIRE_SIG: v });
    expect(err.problems.some((p) => p.startsWith('FED_REQUIRE_SIG'))).toBe(true);
  });
});

describe('FEED_MAX_LAG_MS', () => {
  it('is at least FEED_RETENTION_MS; 0 (unset) means 4 x FEED_RETENTION_MS', () => {
    expect(loadConfig({ ...base, FEED_RETENTION_MS: '5000' }).retention.maxLagMs).toBe(20_000);
    expect(loadConfig({ ...base, FEED_RETENTION_MS: '5000', FEED_MAX_LAG_MS: '5000' }).retention.maxLagMs).toBe(5000);
    expect(configError({ ...base, FEED_RETENTION_MS: '5000', FEED_MAX_LAG_MS: '4999' }).problems).toContain('FEED_MAX_LAG_MS: must be at least FEED_RETENTION_MS (5000), or 0 for 4 x FEED_RETENTION_MS');
  });
});

describe('WORKER_QUEUES', () => {
  it('splits and trims the list', () => {
    expect(loadConfig({ ...base, WORKER_QUEUES: ' push , dlq,' }).workerQueues).toEqual(['push', 'dlq']);
  });

  it('refuses an unknown queue', () => {
    const err = configError({ ...base, WORKER_QUEUES: 'push,bogus' });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(/^WORKER_QUEUES: unknown queue "bogus"/);
  });
});

describe('numbers and URLs', () => {
  it('enforces integer ranges', () => {
    expect(loadConfig({ ...base, HTTP_PORT: '0' }).http.port).toBe(0);
    expect(loadConfig({ ...base, HTTP_PORT: '65535' }).http.port).toBe(65535);
    const cases: Array<[string, string]> = [['HTTP_PORT', '65536'], ['HTTP_PORT', '80.5'], ['HTTP_PORT', 'http'], ['PUSH_BATCH_MAX', '1001'], ['PUSH_BATCH_MAX', '0'], ['DLQ_REPLAY_MAX_BATCH', '63']];
    for (const [k, v] of cases) {
      expect(configError({ ...base, [k]: v }).problems.some((p) => p.startsWith(`${k}:`)), `${k}=${v}`).toBe(true);
    }
  });

  it('checks URL protocols', () => {
    expect(configError({ ...base, DATABASE_URL: 'mysql://db/x' }).problems.some((p) => p.startsWith('DATABASE_URL'))).toBe(true);
    expect(configError({ ...base, REDIS_URL: 'http://r:6379' }).problems.some((p) => p.startsWith('REDIS_URL'))).toBe(true);
    expect(configError({ ...base, REDIS_URL: 'nope' }).problems.some((p) => p.startsWith('REDIS_URL'))).toBe(true);
  });

  it('keeps the outbound timeout below the 30 s job lock', () => {
    expect(loadConfig({ ...base, FED_REQUEST_TIMEOUT_MS: '29999' }).federation.requestTimeoutMs).toBe(29_999);
    expect(configError({ ...base, FED_REQUEST_TIMEOUT_MS: '30000' }).problems.some((p) => p.startsWith('FED_REQUEST_TIMEOUT_MS'))).toBe(true);
    // relative to JOB_LOCK_MS, not a fixed number
    expect(loadConfig({ ...base, JOB_LOCK_MS: '60000', FED_REQUEST_TIMEOUT_MS: '45000' }).federation.requestTimeoutMs).toBe(45_000);
    expect(configError({ ...base, JOB_LOCK_MS: '5000', FED_REQUEST_TIMEOUT_MS: '5000' }).problems.some((p) => p.startsWith('FED_REQUEST_TIMEOUT_MS'))).toBe(true);
  });
});

describe('Redis topology', () => {
  it('uses REDIS_URL alone by default', () => {
    expect(loadConfig(base).redis).toEqual({ kind: 'single', url: 'redis://127.0.0.1:6379' });
  });

  it('REDIS_CLUSTER_NODES replaces REDIS_URL with the cluster seeds (IPv6 in brackets)', () => {
    const c = loadConfig({ ...base, REDIS_URL: 'redis://r:6379', REDIS_CLUSTER_NODES: '127.0.0.1:7001, redis-2:7002,[::1]:7003', QUEUE_PREFIX: '{mf-a}' });
    expect(c.redis).toEqual({ kind: 'cluster', nodes: [{ host: '127.0.0.1', port: 7001 }, { host: 'redis-2', port: 7002 }, { host: '::1', port: 7003 }] });
    expect(describeConfig(c).redis).toBe('cluster 127.0.0.1:7001,redis-2:7002,[::1]:7003');
  });

  it('REDIS_SENTINELS and REDIS_SENTINEL_NAME make a sentinel target', () => {
    const c = loadConfig({ ...base, REDIS_SENTINELS: '127.0.0.1:26379,127.0.0.1:26380', REDIS_SENTINEL_NAME: 'mymaster' });
    expect(c.redis).toEqual({ kind: 'sentinel', name: 'mymaster', sentinels: [{ host: '127.0.0.1', port: 26379 }, { host: '127.0.0.1', port: 26380 }] });
    expect(describeConfig(c).redis).toBe('sentinel mymaster via 127.0.0.1:26379,127.0.0.1:26380');
  });

  it('refuses a cluster and sentinels at once, and sentinels without a master name', () => {
    expect(configError({ ...base, REDIS_CLUSTER_NODES: 'a:1', QUEUE_PREFIX: '{x}', REDIS_SENTINELS: 'b:2', REDIS_SENTINEL_NAME: 'm' }).problems).toEqual(['REDIS_CLUSTER_NODES: set together with REDIS_SENTINELS (choose one topology)']);
    expect(configError({ ...base, REDIS_SENTINELS: 'b:2' }).problems).toEqual(['REDIS_SENTINELS: needs REDIS_SENTINEL_NAME (the master name the sentinels monitor)']);
  });

  it('on a cluster refuses a QUEUE_PREFIX without a hash tag, the default included, saying how to fix it', () => {
    expect(configError({ ...base, REDIS_CLUSTER_NODES: 'a:1' }).problems).toEqual(['QUEUE_PREFIX: "memfed" has no hash tag; on a Redis Cluster (REDIS_CLUSTER_NODES) use one, e.g. {memfed}, so each queue\'s keys share a slot']);
    expect(configError({ ...base, REDIS_CLUSTER_NODES: 'a:1', QUEUE_PREFIX: 'mf-a' }).problems[0]).toMatch(/e\.g\. \{mf-a\}/);
    expect(loadConfig({ ...base, REDIS_CLUSTER_NODES: 'a:1', QUEUE_PREFIX: 'node-{mf-a}' }).queuePrefix).toBe('node-{mf-a}');
  });

  it('accepts at most one well-formed hash tag in QUEUE_PREFIX, on any topology', () => {
    expect(loadConfig({ ...base, QUEUE_PREFIX: '{memfed}' }).queuePrefix).toBe('{memfed}');
    for (const bad of ['{a}{b}', '{}', 'a{b', 'a}b', '{a b}']) expect(configError({ ...base, QUEUE_PREFIX: bad }).problems[0], bad).toMatch(/^QUEUE_PREFIX: expected 1-64 chars/);
  });
});

describe('ConfigError', () => {
  it('lists every bad variable at once', () => {
    const bad = {
      NODE_ID: 'bad node id',
      HTTP_PORT: 'abc',
      REDIS_URL: 'http://x',
      DATABASE_URL: 'nope',
      FED_PEERS: 'no-equals-sign',
      FED_REQUIRE_SIG: 'maybe',
      FED_ACK_TIMEOUT_MS: '0',
      QUEUE_PREFIX: 'has space',
      LOG_LEVEL: 'loud',
    };
    const err = configError(bad);
    expect(err.name).toBe('ConfigError');
    expect(err.problems).toHaveLength(Object.keys(bad).length);
    for (const name of Object.keys(bad)) {
      expect(err.message, name).toContain(`${name}:`);
      expect(err.problems.some((p) => p.startsWith(`${name}:`)), name).toBe(true);
    }
    expect(err.message.startsWith('invalid configuration:\n')).toBe(true);
  });

  it('lists every cross-field problem at once', () => {
    const err = configError({ NODE_ID: 'me', FED_PEERS: 'me=http://x:1', WORKER_QUEUES: 'push,nope', FED_REQUEST_TIMEOUT_MS: '30000' });
    for (const name of ['FED_PEERS', 'WORKER_QUEUES', 'FED_REQUEST_TIMEOUT_MS']) {
      expect(err.message, name).toContain(`${name}:`);
      expect(err.problems.some((p) => p.startsWith(`${name}:`)), name).toBe(true);
    }
  });
});

describe('describeConfig', () => {
  it('masks secrets and lists each peer with its flavour', () => {
    const c = loadConfig({ ...base, DATABASE_URL: 'postgres://u:hunter2@db/x', REDIS_URL: 'redis://:s3cret@r:6379', API_KEY: 'k', FED_PEERS: 'p=http://x:1,host:q=http://x:2;flavour=ai-memory-0.7' });
    const d = describeConfig(c);
    const text = JSON.stringify(d);
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('s3cret');
    expect(d.apiKey).toBe('set');
    expect(d.adminToken).toBe('unset');
    expect(d.peers).toEqual([
      { id: 'p', flavour: 'memfed' },
      { id: 'host:q', flavour: 'ai-memory-0.7' },
    ]);
  });
});

describe('one run lists every problem', () => {
  it('reports field errors and cross-variable errors together', () => {
    let err: unknown;
    try {
      loadConfig({ HTTP_PORT: 'x', WORKER_QUEUES: 'push,bogus', NODE_ID: 'me', FED_PEERS: 'me=http://127.0.0.1:1', FED_REQUEST_TIMEOUT_MS: '30000' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    for (const v of ['HTTP_PORT', 'WORKER_QUEUES', 'FED_PEERS', 'FED_REQUEST_TIMEOUT_MS']) expect(problems).toContain(v);
  });
});

describe('HTTP timeouts', () => {
  it('an unset headers timeout follows a request timeout below its default; an explicit one above it is refused', () => {
    expect(loadConfig({ ...base, HTTP_REQUEST_TIMEOUT_MS: '10000' }).httpServer).toMatchObject({ requestTimeoutMs: 10_000, headersTimeoutMs: 10_000 });
    expect(loadConfig({ ...base, HTTP_REQUEST_TIMEOUT_MS: '10000', HTTP_HEADERS_TIMEOUT_MS: '4000' }).httpServer.headersTimeoutMs).toBe(4000);
    expect(configError({ ...base, HTTP_REQUEST_TIMEOUT_MS: '10000', HTTP_HEADERS_TIMEOUT_MS: '15000' }).problems).toEqual(['HTTP_HEADERS_TIMEOUT_MS: must not exceed HTTP_REQUEST_TIMEOUT_MS (10000)']);
  });
});

describe('NODE_ID values ai-memory refuses', () => {
  it('refuses every agent id upstream reserves, and ".."', () => {
    for (const id of ['daemon', 'system', 'federation-catchup', 'subscription-dispatch', 'ai:http-internal', 'ai:migrate', 'export-internal', 'governance-internal']) {
      const err = configError({ NODE_ID: id });
      expect(err.problems, id).toEqual([`NODE_ID: "${id}" is an agent id ai-memory reserves for internal use (its peers refuse it); choose another NODE_ID`]);
    }
    expect(configError({ NODE_ID: 'a..b' }).problems).toEqual(['NODE_ID: may not contain ".." (ai-memory peers refuse such agent ids)']);
    // exact names only, as upstream compares them
    for (const id of ['Daemon', 'daemon-1', 'host:system', 'a.b']) expect(loadConfig({ NODE_ID: id }).nodeId).toBe(id);
  });
});

describe('ids that name key files', () => {
  it('refuses "/" in NODE_ID and peer ids', () => {
    expect(() => loadConfig({ NODE_ID: 'a/b' })).toThrow(ConfigError);
    expect(() => loadConfig({ NODE_ID: 'me', FED_PEERS: 'x/y=http://127.0.0.1:1' })).toThrow(ConfigError);
    expect(loadConfig({ NODE_ID: 'host:a.b@c-d_e' }).nodeId).toBe('host:a.b@c-d_e');
  });
});

/*
 * One entry per variable of src/config.ts: its default, and a bad value with the error it
 * must give. The list is checked against CONFIG_VARIABLES (the schema's own keys), so a
 * variable added without an entry here fails this file.
 */
type Spec = {
  read: (c: Config) => unknown;
  default: unknown;
} & (
  | { bad: string; error: RegExp }
  /** Free text at load time: any value is kept verbatim; `why` says where a wrong one shows. */
  | { free: string; why: string; later?: () => Promise<unknown> }
);

const SPEC: Record<string, Spec> = {
  NODE_ID: { read: (c) => c.nodeId, default: `host:${os.hostname()}`, bad: 'a b', error: /expected 1-128 chars of \[A-Za-z0-9_-:@.\] \(it names the key files\)/ },
  HTTP_HOST: { read: (c) => c.http.host, default: '127.0.0.1', free: '::1', why: 'any host or address; a wrong one fails at listen with the OS error' },
  HTTP_PORT: { read: (c) => c.http.port, default: 9077, bad: '65536', error: /expected an integer in \[0, 65535\], got "65536"/ },
  WORKER_HTTP_PORT: { read: (c) => c.workerHttpPort, default: 9177, bad: '-1', error: /expected an integer in \[0, 65535\], got "-1"/ },
  DATABASE_URL: { read: (c) => c.databaseUrl, default: 'postgres://postgres@127.0.0.1:5432/memfed', bad: 'mysql://db/x', error: /expected postgres: or postgresql: URL/ },
  DATABASE_POOL_MAX: { read: (c) => c.databasePoolMax, default: 10, bad: '0', error: /expected an integer in \[1, 200\], got "0"/ },
  WRITE_BATCH_MAX: { read: (c) => c.writeBatch.max, default: 256, bad: '1001', error: /expected an integer in \[1, 1000\], got "1001"/ },
  WRITE_BATCH_IN_FLIGHT: { read: (c) => c.writeBatch.inFlight, default: 1, bad: '0', error: /expected an integer in \[1, 64\], got "0"/ },
  REDIS_URL: { read: (c) => c.redisUrl, default: 'redis://127.0.0.1:6379', bad: 'http://r:6379', error: /expected redis: or rediss: URL/ },
  REDIS_CLUSTER_NODES: { read: (c) => (c.redis.kind === 'cluster' ? c.redis.nodes : []), default: [], bad: '127.0.0.1', error: /bad entry "127.0.0.1": expected host:port/ },
  REDIS_SENTINELS: { read: (c) => (c.redis.kind === 'sentinel' ? c.redis.sentinels : []), default: [], bad: 'r:0', error: /bad entry "r:0": expected host:port/ },
  REDIS_SENTINEL_NAME: { read: (c) => (c.redis.kind === 'sentinel' ? c.redis.name : ''), default: '', bad: 'mymaster', error: /needs REDIS_SENTINELS \(the sentinel addresses\)/ },
  QUEUE_PREFIX: { read: (c) => c.queuePrefix, default: 'memfed', bad: 'has space', error: /expected 1-64 chars of \[A-Za-z0-9_-.\]/ },
  PROCESS_ID: { read: (c) => c.processId, default: '', bad: 'a b', error: /expected 0-64 chars of \[A-Za-z0-9_-.:\]/ },
  FED_PEERS: { read: (c) => c.federation.peers, default: [], bad: 'nope', error: /bad peer entry "nope": expected id=url/ },
  FED_QUORUM_W: { read: (c) => c.federation.quorumW, default: 1, bad: '0', error: /expected an integer in \[1, 64\], got "0"/ },
  FED_ACK_TIMEOUT_MS: { read: (c) => c.federation.ackTimeoutMs, default: 2000, bad: '0', error: /expected an integer in \[1, 600000\], got "0"/ },
  FED_KEY_DIR: { read: (c) => c.federation.keyDir, default: './data/keys', free: '/srv/memfed keys', why: 'any path; a missing one is created at start, an unwritable one fails there' },
  FED_REQUIRE_SIG: { read: (c) => c.federation.requireSig, default: true, bad: 'maybe', error: /expected true\/false, got "maybe"/ },
  FED_CLOCK_SKEW_MS: { read: (c) => c.federation.clockSkewMs, default: 300_000, bad: '999', error: /expected an integer in \[1000, 3600000\], got "999"/ },
  FED_BARE_NONCE_RETENTION_MS: { read: (c) => c.federation.bareNonces.retentionMs, default: 604_800_000, bad: '1000', error: /expected an integer in \[3600000, 7776000000\], got "1000"/ },
  FED_BARE_NONCE_MAX_PER_PEER: { read: (c) => c.federation.bareNonces.maxPerPeer, default: 100_000, bad: '10', error: /expected an integer in \[1000, 10000000\], got "10"/ },
  FED_REQUEST_TIMEOUT_MS: { read: (c) => c.federation.requestTimeoutMs, default: 10_000, bad: '99', error: /expected an integer in \[100, 120000\], got "99"/ },
  JOB_LOCK_MS: { read: (c) => c.jobLockMs, default: 30_000, bad: 'soon', error: /expected an integer in \[5000, 600000\], got "soon"/ },
  API_KEY: { read: (c) => c.apiKey, default: '', free: 'k 3y!', why: 'any secret; empty turns the check off' },
  ADMIN_TOKEN: { read: (c) => c.adminToken, default: '', free: 't0k=n', why: 'any secret; empty leaves the admin API unmounted' },
  PUSH_CONCURRENCY: { read: (c) => c.concurrency.push, default: 8, bad: '257', error: /expected an integer in \[1, 256\], got "257"/ },
  DLQ_CONCURRENCY: { read: (c) => c.concurrency.dlq, default: 1, bad: '65', error: /expected an integer in \[1, 64\], got "65"/ },
  CATCHUP_CONCURRENCY: { read: (c) => c.concurrency.catchup, default: 2, bad: '0', error: /expected an integer in \[1, 64\], got "0"/ },
  PUSH_BATCH_MAX: { read: (c) => c.push.batchMax, default: 500, bad: '1001', error: /expected an integer in \[1, 1000\], got "1001"/ },
  PUSH_BATCH_MAX_BYTES: { read: (c) => c.push.batchMaxBytes, default: 8 * 1024 * 1024, bad: '65535', error: /expected an integer in \[65536, 33554432\], got "65535"/ },
  PUSH_REFUSAL_BREAKER_BATCHES: { read: (c) => c.push.refusalBreaker.batches, default: 3, bad: '-1', error: /expected an integer in \[0, 1000\], got "-1"/ },
  PUSH_REFUSAL_BREAKER_PROBE_MS: { read: (c) => c.push.refusalBreaker.probeMs, default: 300_000, bad: '999', error: /expected an integer in \[1000, 86400000\], got "999"/ },
  PUSH_RELAY: { read: (c) => c.push.relay, default: true, bad: 'sometimes', error: /expected true\/false, got "sometimes"/ },
  RECONCILE_INTERVAL_MS: { read: (c) => c.push.reconcileIntervalMs, default: 5000, bad: '99', error: /expected an integer in \[100, 3600000\], got "99"/ },
  CATCHUP_INTERVAL_MS: { read: (c) => c.catchup.intervalMs, default: 30_000, bad: '0.5s', error: /expected an integer in \[100, 86400000\], got "0.5s"/ },
  FEED_RETENTION_MS: { read: (c) => c.retention.feedRetentionMs, default: 7 * 24 * 3600_000, bad: '999', error: /expected an integer in \[1000, 315360000000\], got "999"/ },
  FEED_MAX_LAG_MS: { read: (c) => c.retention.maxLagMs, default: 4 * 7 * 24 * 3600_000, bad: '1.5', error: /expected an integer in \[0, 315360000000\], got "1.5"/ },
  FEED_SNAPSHOT_TTL_MS: { read: (c) => c.retention.snapshotTtlMs, default: 3600_000, bad: '999', error: /expected an integer in \[1000, 604800000\], got "999"/ },
  RETENTION_INTERVAL_MS: { read: (c) => c.retention.intervalMs, default: 300_000, bad: '99', error: /expected an integer in \[100, 86400000\], got "99"/ },
  RETENTION_BATCH: { read: (c) => c.retention.batch, default: 5_000, bad: '0', error: /expected an integer in \[1, 100000\], got "0"/ },
  RETENTION_MAX_BATCHES: { read: (c) => c.retention.maxBatches, default: 200, bad: '0', error: /expected an integer in \[1, 100000\], got "0"/ },
  DLQ_REPLAY_INTERVAL_MS: { read: (c) => c.dlq.replayIntervalMs, default: 30_000, bad: '99', error: /expected an integer in \[100, 86400000\], got "99"/ },
  DLQ_MAX_REPLAY_ATTEMPTS: { read: (c) => c.dlq.maxReplayAttempts, default: 100, bad: '0', error: /expected an integer in \[1, 1000000\], got "0"/ },
  DLQ_REPLAY_MAX_BATCH: { read: (c) => c.dlq.replayMaxBatch, default: 2048, bad: '63', error: /expected an integer in \[64, 100000\], got "63"/ },
  DLQ_RUN_BUDGET_MS: { read: (c) => c.dlq.runBudgetMs, default: 20_000, bad: '600001', error: /expected an integer in \[0, 600000\], got "600001"/ },
  WORKER_QUEUES: { read: (c) => c.workerQueues, default: ['push', 'dlq', 'catchup', 'audit', 'expiry', 'retention', 'repair'], bad: 'push,bogus', error: /unknown queue "bogus" \(known: push, dlq, catchup, audit, expiry, retention, repair\)/ },
  SHORT_TTL_SECS: { read: (c) => c.tierTtlSecs.short, default: 21_600, bad: '0', error: /expected an integer in \[1, 315360000\], got "0"/ },
  MID_TTL_SECS: { read: (c) => c.tierTtlSecs.mid, default: 604_800, bad: '6.5', error: /expected an integer in \[1, 315360000\], got "6.5"/ },
  EXPIRY_SWEEP_INTERVAL_MS: { read: (c) => c.expiry.sweepIntervalMs, default: 60_000, bad: '99', error: /expected an integer in \[100, 86400000\], got "99"/ },
  TOMBSTONE_GC_INTERVAL_MS: { read: (c) => c.expiry.tombstoneGcIntervalMs, default: 3_600_000, bad: '0', error: /expected an integer in \[100, 86400000\], got "0"/ },
  EXPIRY_BATCH_MAX: { read: (c) => c.expiry.batchMax, default: 1000, bad: '100001', error: /expected an integer in \[1, 100000\], got "100001"/ },
  EXPIRY_RUN_BUDGET_MS: { read: (c) => c.expiry.runBudgetMs, default: 20_000, bad: '-1', error: /expected an integer in \[0, 600000\], got "-1"/ },
  TOMBSTONE_GRACE_MS: { read: (c) => c.expiry.tombstoneGraceMs, default: 30 * 86_400_000, bad: '604800000', error: /TOMBSTONE_GRACE_MS: must be longer than FEED_RETENTION_MS \(604800000\)/ },
  REPAIR_INTERVAL_MS: { read: (c) => c.repair.intervalMs, default: 21_600_000, bad: '999', error: /expected an integer in \[1000, 2592000000\], got "999"/ },
  REPAIR_RUN_BUDGET_MS: { read: (c) => c.repair.runBudgetMs, default: 300_000, bad: '3600001', error: /expected an integer in \[1000, 3600000\], got "3600001"/ },
  REPAIR_CONCURRENCY: { read: (c) => c.concurrency.repair, default: 1, bad: '17', error: /expected an integer in \[1, 16\], got "17"/ },
  SHUTDOWN_GRACE_MS: { read: (c) => c.shutdownGraceMs, default: 10_000, bad: '600001', error: /expected an integer in \[0, 600000\], got "600001"/ },
  STARTUP_WAIT_MS: { read: (c) => c.startupWaitMs, default: 10_000, bad: '-1', error: /expected an integer in \[0, 600000\], got "-1"/ },
  MAX_BODY_BYTES: { read: (c) => c.limits.maxBodyBytes, default: 512 * 1024, bad: '1024', error: /expected an integer in \[16384, 67108864\], got "1024"/ },
  MEMORY_MAX_BYTES: { read: (c) => c.limits.memoryMaxBytes, default: 256 * 1024, bad: '2000000', error: /expected an integer in \[16384, 1048576\], got "2000000"/ },
  MAX_BATCH_BODY_BYTES: { read: (c) => c.limits.maxBatchBodyBytes, default: 48 * 1024 * 1024, bad: '1', error: /expected an integer in \[65536, 268435456\], got "1"/ },
  AUDIT_LEVEL: { read: (c) => c.audit.level, default: 'security', bad: 'everything', error: /expected one of security, all, got "everything"/ },
  AUDIT_CHECKPOINT_EVERY: { read: (c) => c.audit.checkpointEvery, default: 1000, bad: '0', error: /expected an integer in \[1, 10000000\], got "0"/ },
  AUDIT_CHECKPOINT_INTERVAL_MS: { read: (c) => c.audit.checkpointIntervalMs, default: 60_000, bad: '99', error: /expected an integer in \[100, 86400000\], got "99"/ },
  AUDIT_REFUSAL_BURST: { read: (c) => c.audit.refusalBurst, default: 20, bad: '0', error: /expected an integer in \[1, 10000\], got "0"/ },
  AUDIT_REFUSAL_WINDOW_MS: { read: (c) => c.audit.refusalWindowMs, default: 60_000, bad: '99', error: /expected an integer in \[100, 3600000\], got "99"/ },
  MAX_CONCURRENT_BATCH_READS: { read: (c) => c.limits.concurrentBatchReads, default: 4, bad: '0', error: /expected an integer in \[1, 256\], got "0"/ },
  GOVERNANCE_FILE: {
    read: (c) => c.governance.file, default: '', free: '/etc/memfed/policy.json',
    why: 'a path, read at start: a missing file fails the start naming the path',
    later: () => loadPolicy({ file: '/nonexistent/memfed-policy.json', inline: '' }),
  },
  GOVERNANCE_POLICY: {
    read: (c) => c.governance.inline, default: '', free: '{"deny_namespaces":["x/**"]}',
    why: 'JSON, parsed at start: invalid JSON fails the start naming GOVERNANCE_POLICY',
    later: () => loadPolicy({ file: '', inline: '{not json' }),
  },
  MEMFED_FAULT_CRASH_AFTER_COMMIT: { read: (c) => c.faults.crashAfterCommit, default: false, bad: 'sometimes', error: /expected true\/false, got "sometimes"/ },
  HTTP_REQUEST_TIMEOUT_MS: { read: (c) => c.httpServer.requestTimeoutMs, default: 30_000, bad: 'soon', error: /expected an integer in \[1000, 600000\], got "soon"/ },
  HTTP_HEADERS_TIMEOUT_MS: { read: (c) => c.httpServer.headersTimeoutMs, default: 20_000, bad: '999', error: /expected an integer in \[1000, 600000\], got "999"/ },
  HTTP_KEEPALIVE_TIMEOUT_MS: { read: (c) => c.httpServer.keepAliveTimeoutMs, default: 5_000, bad: '0', error: /expected an integer in \[1000, 600000\], got "0"/ },
  HTTP_MAX_CONNECTIONS: { read: (c) => c.httpServer.maxConnections, default: 1024, bad: '0', error: /expected an integer in \[1, 1000000\], got "0"/ },
  TLS_CERT_FILE: { read: (c) => c.tls.certFile, default: '', bad: '/etc/memfed/node.crt', error: /needs TLS_KEY_FILE too \(set both or neither\)/ },
  TLS_KEY_FILE: { read: (c) => c.tls.keyFile, default: '', bad: '/etc/memfed/node.key', error: /needs TLS_CERT_FILE too \(set both or neither\)/ },
  TLS_CA_FILE: {
    read: (c) => c.tls.caFile, default: '', free: '/etc/memfed/ca.crt',
    why: 'a path, read at start: a missing file fails the start naming TLS_CA_FILE',
    later: () => loadTls({ certFile: '', keyFile: '', caFile: '/nonexistent/memfed-ca.crt', requireClientCert: false }),
  },
  FED_REQUIRE_CLIENT_CERT: { read: (c) => c.tls.requireClientCert, default: false, bad: 'maybe', error: /expected true\/false, got "maybe"/ },
  LOG_LEVEL: { read: (c) => c.logLevel, default: 'info', bad: 'loud', error: /expected one of fatal, error, warn, info, debug, trace, silent, got "loud"/ },
};

describe('every configuration variable', () => {
  it('has an entry here for each variable src/config.ts reads, and none extra', () => {
    expect(Object.keys(SPEC).sort()).toEqual([...CONFIG_VARIABLES].sort());
    expect(CONFIG_VARIABLES.length).toBeGreaterThan(30);
  });

  const hostnameIsValidId = /^[A-Za-z0-9_\-:@.]{1,123}$/.test(os.hostname());
  const envFor = (name: string, value?: string) => (name === 'NODE_ID' ? (value === undefined ? {} : { NODE_ID: value }) : { ...base, ...(value === undefined ? {} : { [name]: value }) });

  describe.each(Object.entries(SPEC))('%s', (name, spec) => {
    it.runIf(name !== 'NODE_ID' || hostnameIsValidId)('defaults when unset or empty', () => {
      expect(spec.read(loadConfig(envFor(name)))).toEqual(spec.default);
      // An empty value (compose's `VAR=${X:-}`) is the same as unset, for the whole config.
      expect(loadConfig(envFor(name, ''))).toEqual(loadConfig(envFor(name)));
    });

    if ('bad' in spec) {
      it(`refuses ${JSON.stringify(spec.bad)} with an error naming the variable`, () => {
        const err = configError(envFor(name, spec.bad));
        const mine = err.problems.filter((p) => p.startsWith(`${name}: `));
        expect(mine, err.message).toHaveLength(1);
        expect(mine[0]).toMatch(spec.error);
        // only this variable is reported
        expect(err.problems).toEqual(mine);
      });
    } else {
      it(`keeps any value verbatim (${spec.why})`, async () => {
        expect(spec.read(loadConfig(envFor(name, spec.free)))).toBe(spec.free);
        if (spec.later) await expect(spec.later()).rejects.toThrow(name === 'GOVERNANCE_FILE' ? /\/nonexistent\/memfed-policy\.json/ : new RegExp(name));
      });
    }
  });
});
