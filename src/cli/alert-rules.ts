import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFlags, UsageError } from './args.js';

/**
 * The runbook every shipped alert links to (its `runbook_url` and the `Runbook:` line of
 * its description): the project's copy of docs/operations.md. An operator prints the rules
 * with their own copy's URL instead (`memfed alert-rules --runbook-base ...`).
 */
export const DEFAULT_RUNBOOK_BASE = 'https://github.com/memfed/memfed/blob/main/docs/operations.md';

export const ALERT_RULES_USAGE = `memfed alert-rules [--runbook-base URL]
                            print docs/alerts/memfed.rules.yml with every runbook link under URL
                            (the page of your copy of docs/operations.md; default ${DEFAULT_RUNBOOK_BASE})`;

const RULES_FILE = path.join('docs', 'alerts', 'memfed.rules.yml');

/** The shipped rules file: the nearest docs/alerts/ above this module (src/ from source, dist/src/ when built). */
export function alertRulesPath(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const file = path.join(dir, RULES_FILE);
    if (existsSync(file)) return file;
    if (path.dirname(dir) === dir) throw new Error(`${RULES_FILE} not found above ${fileURLToPath(import.meta.url)}`);
  }
}

/** Why `base` cannot be a runbook base (null = it can): an absolute http(s) URL a `#anchor` can follow. */
export function runbookBaseProblem(base: string): string | null {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    return `expected an absolute http(s) URL, got "${base}"`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `expected an http: or https: URL, got "${base}"`;
  // The anchor is appended; characters that would need YAML quoting are refused.
  if (base.includes('#') || /[\s"'{}]/.test(base)) return `must not contain "#", quotes, braces or spaces (the #alert-... anchor is appended), got "${base}"`;
  return null;
}

/** The rules text with every runbook link moved from the default base to `base`. */
export const withRunbookBase = (rules: string, base: string) => rules.split(`${DEFAULT_RUNBOOK_BASE}#`).join(`${base}#`);

/** `memfed alert-rules`: prints the rules for the operator's Prometheus. */
export function alertRulesCommand(args: string[], out: (s: string) => void): number {
  const values = parseFlags('alert-rules', args, { 'runbook-base': { type: 'string' } });
  const base = values['runbook-base'] ?? DEFAULT_RUNBOOK_BASE;
  const problem = runbookBaseProblem(base);
  if (problem) throw new UsageError(`alert-rules: --runbook-base ${problem}`);
  out(withRunbookBase(readFileSync(alertRulesPath(), 'utf8'), base).replace(/\n$/, ''));
  return 0;
}
