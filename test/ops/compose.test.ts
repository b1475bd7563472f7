import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { skipNote } from '../helpers/skip.js';

/*
 * docker-compose.yml, validated by Compose itself (`config -q`) and checked through the
 * normalized YAML that `config` prints (no YAML library needed). Needs `docker-compose`
 * (Debian's package, which .ci/run installs when missing) or the `docker compose` plugin;
 * no Docker engine is required. Without either, the tests are skipped with a warning.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODE_SERVICES = ['node-a-api', 'node-a-worker', 'node-b-api', 'node-b-worker', 'node-c-api', 'node-c-worker'];

function works(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/** The Compose command line to use: docker-compose (v1 or v2 standalone) or the docker plugin. */
const compose: string[] | null = works('docker-compose', ['version']) ? ['docker-compose'] : works('docker', ['compose', 'version']) ? ['docker', 'compose'] : null;

if (!compose) {
  console.warn(
    'test/ops/compose.test.ts: neither `docker-compose` nor `docker compose` is available, so the ' +
      'docker-compose.yml validation is SKIPPED. Install it with `apt-get install docker-compose` (Debian).',
  );
}

const FIXED_ENV = { MEMFED_ADMIN_TOKEN: 'test-admin-token', MEMFED_PG_PASSWORD: 'test-pg', MEMFED_LOG_LEVEL: 'info' };

function run(args: string[], env: Record<string, string> = FIXED_ENV, files: string[] = ['docker-compose.yml']): { code: number; stdout: string; stderr: string } {
  const [cmd, ...pre] = compose ?? ['docker-compose'];
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MEMFED_')));
  try {
    const stdout = execFileSync(cmd!, [...pre, ...files.flatMap((f) => ['-f', f]), ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
      // Fixed values, so the assertions do not depend on the caller's environment.
      env: { ...inherited, ...env },
    });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status?: number | null; stdout?: string; stderr?: string; message: string };
    return { code: e.status ?? -1, stdout: e.stdout ?? '', stderr: e.stderr || e.message };
  }
}

/** The lines of `services.<name>` in the normalized YAML (indentation-based). */
function serviceBlock(yaml: string, name: string): string {
  const lines = yaml.split('\n');
  const services = lines.findIndex((l) => l === 'services:');
  const start = lines.findIndex((l, i) => i > services && l === `  ${name}:`);
  if (services < 0 || start < 0) return '';
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() !== '' && !line.startsWith('   ')) break;
    out.push(line);
  }
  return out.join('\n');
}

/** Flattens a block: list items and folded lines joined with spaces, quotes dropped. */
function flat(block: string): string {
  return block
    .replace(/["']/g, '')
    .replace(/\n\s*-\s+/g, ' ')
    .replace(/\s+/g, ' ');
}

describe.skipIf(!compose)(`docker-compose.yml${skipNote(!compose, 'neither docker-compose nor docker compose available (apt-get install docker-compose)')}`, () => {
  it('is valid (config -q exits 0)', () => {
    const r = run(['config', '-q']);
    expect(r.code, r.stderr).toBe(0);
  });

  it('has redis, postgres, the one-shot services and six node services', () => {
    const r = run(['config', '--services']);
    expect(r.code, r.stderr).toBe(0);
    const services = r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
    for (const s of ['redis', 'postgres', 'deps', 'keys', 'migrate', ...NODE_SERVICES]) expect(services).toContain(s);
  });

  it('runs Redis with appendonly yes and maxmemory-policy noeviction on a volume', () => {
    const r = run(['config']);
    expect(r.code, r.stderr).toBe(0);
    const redis = flat(serviceBlock(r.stdout, 'redis'));
    expect(redis).toMatch(/image: redis:7/);
    expect(redis).toContain('--appendonly yes');
    expect(redis).toContain('--maxmemory-policy noeviction');
    expect(redis).toMatch(/:\/data/);
  });

  it('gives each node api and worker its own id, database, queue prefix, peers and ports', () => {
    const r = run(['config']);
    expect(r.code, r.stderr).toBe(0);
    const nodes = [
      { id: 'node-a', db: 'memfed_a', api: 9081, worker: 9181 },
      { id: 'node-b', db: 'memfed_b', api: 9082, worker: 9182 },
      { id: 'node-c', db: 'memfed_c', api: 9083, worker: 9183 },
    ];
    for (const n of nodes) {
      const peers = nodes.filter((p) => p !== n).map((p) => `${p.id}=http://${p.id}-api:${p.api}`).join(',');
      for (const role of ['api', 'worker'] as const) {
        const name = `${n.id}-${role}`;
        const block = flat(serviceBlock(r.stdout, name));
        expect(block, name).toContain(`workers/memfed.mjs ${role}`);
        expect(block, name).toContain(`NODE_ID: ${n.id}`);
        expect(block, name).toContain('HTTP_HOST: 0.0.0.0');
        expect(block, name).toContain(`HTTP_PORT: ${n.api}`);
        expect(block, name).toContain(`WORKER_HTTP_PORT: ${n.worker}`);
        expect(block, name).toContain(`DATABASE_URL: postgres://postgres:test-pg@postgres:5432/${n.db}`);
        expect(block, name).toContain('REDIS_URL: redis://redis:6379');
        expect(block, name).toContain(`QUEUE_PREFIX: mf-${n.id.slice(-1)}`);
        expect(block, name).toContain(`FED_PEERS: ${peers}`);
        expect(block, name).toContain('FED_KEY_DIR: /keys');
        expect(block, name).toContain('FED_QUORUM_W: 2');
        expect(block, name).toContain('ADMIN_TOKEN: test-admin-token');
        expect(block, name).toContain('/api/v1/health');
        const port = role === 'api' ? n.api : n.worker;
        expect(block, name).toContain(`127.0.0.1:${port}:${port}`);
        expect(block, name).toContain('service_completed_successfully');
        expect(block, name).toContain('service_healthy');
      }
    }
  });

  it('refuses to run without MEMFED_ADMIN_TOKEN: no default token on a published port', () => {
    const { MEMFED_ADMIN_TOKEN: _token, ...rest } = FIXED_ENV;
    const r = run(['config', '-q'], rest);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('set MEMFED_ADMIN_TOKEN');
    expect(run(['config']).stdout).not.toContain('change-me');
  }, 60_000);

  it('publishes every port on loopback unless MEMFED_BIND says otherwise', () => {
    // Normalized, a port bound to an address reads `- 127.0.0.1:9081:9081/tcp`; an
    // unbound one `- published: 9081` (which would be every interface).
    const published = (yaml: string) => [...yaml.matchAll(/^\s+- (?:([\d.]+):(\d+):\d+\/tcp|published: (\d+))$/gm)].map((m) => (m[1] ? `${m[1]}:${m[2]}` : `*:${m[3]}`));
    const loopback = published(run(['config']).stdout);
    expect(loopback.length).toBeGreaterThanOrEqual(6);
    expect(loopback.every((p) => p.startsWith('127.0.0.1:'))).toBe(true);
    expect(published(run(['config'], { ...FIXED_ENV, MEMFED_BIND: '0.0.0.0' }).stdout).every((p) => p.startsWith('0.0.0.0:'))).toBe(true);
  }, 60_000);

  it('runs Prometheus with the shipped alert rules and a config that scrapes every node service', () => {
    const r = run(['config']);
    expect(r.code, r.stderr).toBe(0);
    const prom = flat(serviceBlock(r.stdout, 'prometheus'));
    expect(prom).toMatch(/image: prom\/prometheus:v\d+\.\d+\.\d+/);
    expect(prom).toContain('--config.file=/etc/prometheus/prometheus.yml');
    expect(prom).toMatch(/\/docs\/prometheus\/prometheus\.yml:\/etc\/prometheus\/prometheus\.yml:ro/);
    expect(prom).toMatch(/\/docs\/alerts:\/etc\/prometheus\/rules:ro/);
    expect(prom).toContain('127.0.0.1:9090:9090');
    // The mounted config loads the mounted rule files and scrapes each role's /metrics.
    const config = readFileSync(`${ROOT}docs/prometheus/prometheus.yml`, 'utf8');
    expect(config).toContain('- /etc/prometheus/rules/*.rules.yml');
    const targets = [...config.matchAll(/^ +- ([\w-]+):(\d+)$/gm)].map((m) => `${m[1]}:${m[2]}`);
    const expected = NODE_SERVICES.map((name) => {
      const block = flat(serviceBlock(r.stdout, name));
      const port = new RegExp(`\\b${name.endsWith('-api') ? 'HTTP_PORT' : 'WORKER_HTTP_PORT'}: (\\d+)`).exec(block)?.[1];
      return `${name}:${port}`;
    });
    expect(targets.sort()).toEqual(expected.sort());
  });

  describe('the cluster variant (docker-compose.cluster.yml over docker-compose.yml)', () => {
    const CLUSTER = ['docker-compose.yml', 'docker-compose.cluster.yml'];

    it('is valid, with six cluster Redis nodes and the one-shot cluster init', () => {
      expect(run(['config', '-q'], FIXED_ENV, CLUSTER).code).toBe(0);
      const services = run(['config', '--services'], FIXED_ENV, CLUSTER).stdout.split('\n').map((s) => s.trim());
      for (const s of ['redis-1', 'redis-2', 'redis-3', 'redis-4', 'redis-5', 'redis-6', 'redis-cluster-init', ...NODE_SERVICES]) expect(services).toContain(s);
      const yaml = run(['config'], FIXED_ENV, CLUSTER).stdout;
      const redis1 = flat(serviceBlock(yaml, 'redis-1'));
      expect(redis1).toContain('--cluster-enabled yes');
      expect(redis1).toContain('--appendonly yes');
      expect(redis1).toContain('--maxmemory-policy noeviction');
      expect(flat(serviceBlock(yaml, 'redis-cluster-init'))).toContain('--cluster-replicas 1');
    });

    it('points every node service at the cluster with its own hash-tagged queue prefix, after the cluster is formed', () => {
      const yaml = run(['config'], FIXED_ENV, CLUSTER).stdout;
      for (const name of NODE_SERVICES) {
        const block = flat(serviceBlock(yaml, name));
        expect(block, name).toContain('REDIS_CLUSTER_NODES: redis-1:6379,redis-2:6379,redis-3:6379');
        expect(block, name).toContain(`QUEUE_PREFIX: {mf-${name.charAt(5)}}`);
        expect(block, name).toMatch(/redis-cluster-init: condition: service_completed_successfully/);
      }
    });
  });
});
