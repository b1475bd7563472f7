import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RUNBOOK_BASE, alertRulesCommand, alertRulesPath } from '../../src/cli/alert-rules.js';
import { UsageError } from '../../src/cli/args.js';
import { skipNote } from '../helpers/skip.js';

/*
 * The Prometheus alert rules (docs/alerts/memfed.rules.yml) and their promtool unit tests
 * (docs/alerts/memfed.rules.test.yml). promtool comes from Debian's `prometheus` package,
 * which .ci/run installs when it is missing; without it the promtool tests are skipped
 * with a warning, never passed silently.
 */

const ALERTS_DIR = fileURLToPath(new URL('../../docs/alerts/', import.meta.url));
const RULES = `${ALERTS_DIR}memfed.rules.yml`;
const RULE_TESTS = `${ALERTS_DIR}memfed.rules.test.yml`;
const OPERATIONS = fileURLToPath(new URL('../../docs/operations.md', import.meta.url));

/** Heading anchors of a markdown file as GitHub (and most renderers) derive them. */
function headingAnchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6} +(.+?) *$/gm)) out.add(m[1]!.toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-'));
  return out;
}

/** What `memfed alert-rules` prints, with the given flags. */
function printedRules(args: string[]): string {
  const lines: string[] = [];
  expect(alertRulesCommand(args, (l) => lines.push(l))).toBe(0);
  return lines.join('\n');
}

interface Run {
  code: number;
  output: string;
}

function promtool(args: string[]): Run {
  try {
    const stdout = execFileSync('promtool', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    return { code: 0, output: stdout };
  } catch (err) {
    const e = err as { status?: number | null; stdout?: string; stderr?: string; message: string };
    return { code: e.status ?? -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
  }
}

const hasPromtool = (() => {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
})();

const NO_PROMTOOL = 'promtool not on PATH (apt-get install prometheus)';

if (!hasPromtool) {
  console.warn(
    'test/ops/alerts.test.ts: promtool is not on PATH, so the alert rule checks are SKIPPED. ' +
      'Install it with `apt-get install prometheus` (Debian) to run them.',
  );
}

/** The alert rules as text blocks: name plus the lines up to the next rule. */
function alertBlocks(text: string): Array<{ name: string; body: string }> {
  const parts = text.split(/^ {6}- alert: /m).slice(1);
  return parts.map((p) => {
    const nl = p.indexOf('\n');
    return { name: p.slice(0, nl).trim(), body: p.slice(nl + 1) };
  });
}

describe('alert rules (promtool)', () => {
  it.skipIf(!hasPromtool)(`promtool check rules accepts docs/alerts/memfed.rules.yml${skipNote(!hasPromtool, NO_PROMTOOL)}`, () => {
    const r = promtool(['check', 'rules', RULES]);
    expect(r.output).toContain('SUCCESS');
    expect(r.code, r.output).toBe(0);
  });

  it.skipIf(!hasPromtool)(`promtool check config accepts docs/prometheus/prometheus.yml (the Compose Prometheus)${skipNote(!hasPromtool, NO_PROMTOOL)}`, () => {
    const r = promtool(['check', 'config', fileURLToPath(new URL('../../docs/prometheus/prometheus.yml', import.meta.url))]);
    expect(r.output).toContain('SUCCESS');
    expect(r.code, r.output).toBe(0);
  });

  it.skipIf(!hasPromtool)(`promtool test rules passes docs/alerts/memfed.rules.test.yml${skipNote(!hasPromtool, NO_PROMTOOL)}`, () => {
    const r = promtool(['test', 'rules', RULE_TESTS]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('SUCCESS');
    expect(r.output).not.toContain('FAILED');
    // promtool evaluates every test group: seconds on a busy machine (its own timeout is 60 s).
  }, 60_000);
});

describe('alert rules (conventions, no promtool needed)', () => {
  const rules = readFileSync(RULES, 'utf8');
  const tests = readFileSync(RULE_TESTS, 'utf8');
  const blocks = alertBlocks(rules);

  it('defines the memfed group with the expected alerts', () => {
    expect(rules).toMatch(/^ {2}- name: memfed$/m);
    const names = blocks.map((b) => b.name);
    expect(new Set(names).size).toBe(names.length);
    for (const required of [
      'MemfedPeerRefusingRows',
      'MemfedQueueBacklogHigh',
      'MemfedQueueBacklogGrowing',
      'MemfedQueueOldestWaitingJobTooOld',
      'MemfedQueueJobsFailing',
      'MemfedWorkersDown',
      'MemfedPeerPushLagRowsHigh',
      'MemfedPeerPushLagSecondsHigh',
      'MemfedPeerUnreachable',
      'MemfedPushDlqNotEmpty',
      'MemfedPushDlqQuarantineGrowing',
      'MemfedCatchupStale',
      'MemfedCatchupNeverSucceeded',
      'MemfedAuditOutboxStuck',
      'MemfedAuditCheckpointStale',
      'MemfedQuorumFailures',
    ]) {
      expect(names).toContain(required);
    }
  });

  it('gives every alert a for:, a severity, a summary, a description and its absolute runbook link', () => {
    for (const { name, body } of blocks) {
      const anchor = `${DEFAULT_RUNBOOK_BASE}#alert-${name.toLowerCase()}`;
      expect(body, name).toMatch(/^ {8}for: \d+[smh]$/m);
      expect(body, name).toMatch(/^ {10}severity: (critical|warning)$/m);
      expect(body, name).toMatch(/^ {10}summary: /m);
      expect(body, name).toMatch(/^ {10}description: /m);
      expect(body, name).toContain(`runbook_url: ${anchor}`);
      expect(body, name).toContain(`Runbook: ${anchor}`);
    }
  });

  it('has a promtool test case in which every alert fires', () => {
    for (const { name } of blocks) {
      const firing = new RegExp(`alertname: ${name}\\n {8}exp_alerts:\\n {10}- exp_labels:`);
      expect(tests, `no test case makes ${name} fire`).toMatch(firing);
    }
  });

  it('has negative cases (exp_alerts: [])', () => {
    expect(tests).toMatch(/exp_alerts: \[\]/);
  });

  it('every runbook_url is an absolute URL pointing at a heading of docs/operations.md', () => {
    const anchors = headingAnchors(readFileSync(OPERATIONS, 'utf8'));
    const urls = [...rules.matchAll(/runbook_url: *"?([^"\s]+)"?/g)].map((m) => m[1]!);
    expect(urls).toHaveLength(blocks.length);
    for (const u of urls) {
      expect(u, 'runbook_url must be absolute').toMatch(/^https?:\/\//);
      const [base, anchor] = u.split('#');
      expect(base, u).toBe(DEFAULT_RUNBOOK_BASE);
      expect(anchors.has(anchor!), `docs/operations.md has no heading for #${anchor}`).toBe(true);
    }
  });
});

describe('memfed alert-rules (the operator copy of the rules)', () => {
  const blocks = alertBlocks(readFileSync(RULES, 'utf8'));

  it('prints the shipped rules unchanged by default', () => {
    expect(alertRulesPath()).toBe(RULES);
    expect(`${printedRules([])}\n`).toBe(readFileSync(RULES, 'utf8'));
  });

  it('--runbook-base moves every runbook link (runbook_url and the description line) to the given page', () => {
    const base = 'https://wiki.example/memfed/operations';
    const out = printedRules(['--runbook-base', base]);
    expect(out).not.toContain(DEFAULT_RUNBOOK_BASE);
    const urls = [...out.matchAll(/runbook_url: *(\S+)/g)].map((m) => m[1]!);
    expect(urls).toHaveLength(blocks.length);
    for (const { name } of blocks) {
      expect(urls).toContain(`${base}#alert-${name.toLowerCase()}`);
      expect(out).toContain(`Runbook: ${base}#alert-${name.toLowerCase()}`);
    }
  });

  it('refuses a base that is not an absolute http(s) URL, or carries its own anchor, as a usage error', () => {
    for (const bad of ['wiki/memfed', 'ftp://wiki.example/ops', 'https://wiki.example/ops#top', 'https://wiki.example/a b']) {
      expect(() => alertRulesCommand(['--runbook-base', bad], () => {})).toThrow(UsageError);
    }
    expect(() => alertRulesCommand(['--runbook'], () => {})).toThrow(/^alert-rules: /);
  });

  it.skipIf(!hasPromtool)(`promtool accepts the rules printed with another base${skipNote(!hasPromtool, NO_PROMTOOL)}`, () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'memfed-rules-')), 'memfed.rules.yml');
    writeFileSync(file, printedRules(['--runbook-base', 'https://wiki.example/memfed/operations']));
    const r = promtool(['check', 'rules', file]);
    expect(r.code, r.output).toBe(0);
  });
});
