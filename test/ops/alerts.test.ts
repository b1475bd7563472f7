import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
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
  });
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

  it('gives every alert a for:, a severity, a summary, a description and its runbook anchor', () => {
    for (const { name, body } of blocks) {
      const anchor = `docs/operations.md#alert-${name.toLowerCase()}`;
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
});
