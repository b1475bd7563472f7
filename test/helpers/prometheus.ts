import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './env.js';

/*
 * A real Prometheus server for tests: Debian's `prometheus` package (which .ci/run installs
 * for promtool) ships the server binary too. It loads rule files generated from the shipped
 * ones with every `for:` shortened, so alerts fire in seconds instead of minutes.
 */

export const ALERTS_DIR = fileURLToPath(new URL('../../docs/alerts/', import.meta.url));

export const hasPrometheus = (() => {
  try {
    execFileSync('prometheus', ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
})();

/** A shipped rule file with every `for:` set to `window`; nothing else changes. */
export function shortenForWindows(rulesYaml: string, window: string): string {
  return rulesYaml.replace(/^( +for: )\S+[ \t]*$/gm, `$1${window}`);
}

/** The shipped rule files (docs/alerts/*.rules.yml, not the promtool tests). */
export function shippedRuleFiles(): string[] {
  return readdirSync(ALERTS_DIR)
    .filter((f) => f.endsWith('.rules.yml'))
    .map((f) => path.join(ALERTS_DIR, f));
}

export interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
  activeAt?: string;
}

export interface PrometheusServer {
  url: string;
  alerts(): Promise<Alert[]>;
  /** Resolves with the first alert named so whose labels include `labels`, once it is firing. */
  waitFiring(alertname: string, labels?: Record<string, string>, timeoutMs?: number): Promise<Alert>;
  output(): string;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** host:port targets scraped as job `memfed` (each node's api and worker /metrics). */
  targets: string[];
  scrapeInterval?: string;
  evaluationInterval?: string;
  /** Replaces every `for:` of the shipped rules. */
  forWindow?: string;
}

export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'memfed-prom-'));
  const rules = shippedRuleFiles().map((src) => {
    const dst = path.join(dir, path.basename(src));
    writeFileSync(dst, shortenForWindows(readFileSync(src, 'utf8'), opts.forWindow ?? '5s'));
    return dst;
  });
  const interval = opts.scrapeInterval ?? '2s';
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${opts.evaluationInterval ?? '1s'}`,
    'rule_files:',
    ...rules.map((r) => `  - ${JSON.stringify(r)}`),
    'scrape_configs:',
    '  - job_name: memfed',
    '    static_configs:',
    `      - targets: [${opts.targets.map((t) => JSON.stringify(t)).join(', ')}]`,
    '',
  ].join('\n');
  writeFileSync(path.join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const proc = spawn('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const alerts = async (): Promise<Alert[]> => {
    const res = await fetch(`${url}/api/v1/alerts`);
    const body = (await res.json()) as { data: { alerts: Alert[] } };
    return body.data.alerts;
  };
  try {
    await waitFor(async () => proc.exitCode === null && (await fetch(`${url}/-/ready`).catch(() => null))?.ok, { timeoutMs: 30_000, intervalMs: 200, what: 'prometheus ready' });
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${out}`);
  }
  return {
    url,
    alerts,
    async waitFiring(alertname, labels = {}, timeoutMs = 30_000) {
      const matches = (a: Alert) => a.labels.alertname === alertname && Object.entries(labels).every(([k, v]) => a.labels[k] === v);
      let seen: Alert[] = [];
      try {
        return await waitFor(
          async () => {
            seen = await alerts();
            return seen.find((a) => matches(a) && a.state === 'firing');
          },
          { timeoutMs, intervalMs: 250, what: `${alertname} firing` },
        );
      } catch (err) {
        const now = seen.map((a) => `${a.labels.alertname}${JSON.stringify(a.labels)} ${a.state}`).join('\n');
        throw new Error(`${(err as Error).message}; alerts now:\n${now || '(none)'}`);
      }
    },
    output: () => out,
    stop,
  };
}
