/*
 * Just enough PromQL reading to check dashboards and alert rules against what a node
 * exports: the metric names a query selects, and the series names a /metrics page offers.
 * Not a parser: it drops what is not a metric name (strings, label matchers, label lists
 * of by/without/on/ignoring/group_*, ranges, numbers, Grafana variables), then keeps the
 * identifiers that are not a function call or a keyword.
 */

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'atan2', 'inf', 'nan', 'start', 'end']);

/** The metric names a PromQL expression (or a Grafana `label_values(metric, label)` query) selects. */
export function metricNames(query: string): string[] {
  let q = query.trim();
  // Grafana variable query: only the first argument is a selector; the last is a label.
  const lv = /^label_values\s*\(([\s\S]*),\s*[a-zA-Z_]\w*\s*\)$/.exec(q);
  if (lv) q = lv[1]!;
  q = q
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    .replace(/\boffset\s+-?\d+[smhdwy]\w*/gi, ' ')
    .replace(/(^|[^\w:])(\d+(\.\d+)?(e[+-]?\d+)?|0x[0-9a-f]+)(?![\w:])/gi, '$1 ');
  const names = new Set<string>();
  for (const m of q.matchAll(/[a-zA-Z_:][\w:]*/g)) {
    const name = m[0];
    const after = q.slice(m.index + name.length).trimStart();
    if (after.startsWith('(')) continue; // a function or an aggregation
    if (KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}

/**
 * The series names a /metrics page (Prometheus text format) offers: every declared metric
 * (a `# TYPE` line is written even before a labelled counter has a sample), with the
 * _bucket/_sum/_count series of histograms and summaries, plus every sample's name.
 */
export function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      const [, name, kind] = type;
      names.add(name!);
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${name}${s}`);
      if (kind === 'summary') for (const s of ['_sum', '_count']) names.add(`${name}${s}`);
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1]!);
  }
  return names;
}

/** The `expr:` of every rule in a Prometheus rule file (block scalars or one-line). */
export function ruleExpressions(rulesYaml: string): Array<{ rule: string; expr: string }> {
  const out: Array<{ rule: string; expr: string }> = [];
  const lines = rulesYaml.split('\n');
  let rule = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const named = /^\s*- (?:alert|record): (\S+)/.exec(line);
    if (named) rule = named[1]!;
    const e = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (!e) continue;
    const [, indent, rest] = e;
    if (rest && !/^[|>][-+]?$/.test(rest.trim())) {
      out.push({ rule, expr: rest });
      continue;
    }
    const body: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > indent!.length)) body.push(lines[++i]!);
    const strip = Math.min(...body.filter((l) => l.trim() !== '').map((l) => l.search(/\S/)));
    out.push({ rule, expr: body.map((l) => l.slice(strip)).join('\n').trim() });
  }
  return out;
}
