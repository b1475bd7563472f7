import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { exportedNames, metricNames, ruleExpressions } from '../helpers/promql.js';

/*
 * The Grafana dashboard (docs/grafana/memfed-dashboard.json) as a Grafana 10 JSON model,
 * and the PromQL name extraction that test/ops/prometheus.int.test.ts uses to check every
 * dashboard query against the metrics a running node exports.
 */

const DASHBOARD = fileURLToPath(new URL('../../docs/grafana/memfed-dashboard.json', import.meta.url));

interface Panel {
  type: string;
  id: number;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Array<{ refId: string; expr: string; datasource?: { uid: string } }>;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
};

describe('PromQL metric name extraction', () => {
  it('keeps metric names and drops functions, aggregations, label lists, matchers, ranges and numbers', () => {
    expect(metricNames('sum by (node, peer) (rate(memfed_pushed_rows_total{node=~"$node", peer!="x"}[$__rate_interval]))')).toEqual(['memfed_pushed_rows_total']);
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(memfed_quorum_ack_seconds_bucket[5m])))')).toEqual(['memfed_quorum_ack_seconds_bucket']);
    expect(metricNames('time() - max by (node, peer) (a_seconds) > 90 and max by (node, peer) (a_seconds) > 0')).toEqual(['a_seconds']);
    expect(metricNames('max by (node, queue) (x_age) > 300\nunless on (node, queue)\nmax by (node, queue) (workers) == 0')).toEqual(['x_age', 'workers']);
    expect(metricNames('sum(rate(errors_total{status=~"5.*"}[5m])) by (node) / ignoring(status) group_left sum(requests_total) offset 1h')).toEqual(['errors_total', 'requests_total']);
    expect(metricNames('deriv(waiting[10m:1m]) * 60 > 1e3')).toEqual(['waiting']);
  });

  it('reads a Grafana label_values(metric, label) variable query as its metric only', () => {
    expect(metricNames('label_values(memfed_queue_jobs, node)')).toEqual(['memfed_queue_jobs']);
    expect(metricNames('label_values(memfed_peer_lag_rows{node=~"$node"}, peer)')).toEqual(['memfed_peer_lag_rows']);
  });

  it('lists what an exposition offers, histogram series included, even metrics without samples yet', () => {
    const page = [
      '# HELP h_seconds x',
      '# TYPE h_seconds histogram',
      'h_seconds_bucket{le="1"} 0',
      '# HELP c_total x',
      '# TYPE c_total counter',
      '# TYPE g gauge',
      'g{node="a"} 1',
    ].join('\n');
    const names = exportedNames(page);
    for (const n of ['h_seconds_bucket', 'h_seconds_sum', 'h_seconds_count', 'c_total', 'g']) expect(names.has(n), n).toBe(true);
    expect(names.has('h_seconds_total')).toBe(false);
  });

  it('reads block and one-line expr: of a rule file', () => {
    const yaml = ['      - alert: A', '        expr: |', '          foo > 1', '          and bar', '        for: 1m', '      - record: r:x', '        expr: sum(baz)'].join('\n');
    expect(ruleExpressions(yaml)).toEqual([
      { rule: 'A', expr: 'foo > 1\nand bar' },
      { rule: 'r:x', expr: 'sum(baz)' },
    ]);
  });
});

describe('Grafana dashboard JSON', () => {
  const panels = dashboard.panels.filter((p) => p.type !== 'row');

  it('is a Grafana 10 model with a Prometheus datasource variable and a node variable', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(38);
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    const ds = dashboard.templating.list.find((v) => v.type === 'datasource');
    expect(ds).toMatchObject({ name: 'datasource', query: 'prometheus' });
    expect(dashboard.templating.list.find((v) => v.name === 'node')).toBeTruthy();
  });

  it('gives every panel a unique id, a place, and queries on the datasource variable', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect(p.gridPos.w, p.title).toBeGreaterThan(0);
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect(t.datasource?.uid, `${p.title} ${t.refId}`).toBe('${datasource}');
        expect(metricNames(t.expr).length, `${p.title} ${t.refId} names no metric`).toBeGreaterThan(0);
        expect(t.expr, `${p.title} ${t.refId} ignores the node variable`).toContain('node=~"$node"');
      }
    }
  });

  it('covers per-peer lag, delivery rate, DLQ, quorum outcomes, queue depth, workers and audit', () => {
    const used = new Set(panels.flatMap((p) => p.targets!.flatMap((t) => metricNames(t.expr))));
    for (const m of [
      'memfed_peer_lag_rows',
      'memfed_peer_lag_seconds',
      'memfed_pushed_rows_total',
      'ai_memory_federation_push_dlq_depth',
      'memfed_push_dlq_quarantined',
      'memfed_quorum_outcomes_total',
      'memfed_queue_jobs',
      'memfed_queue_workers',
      'memfed_audit_appends_total',
      'memfed_audit_outbox_depth',
    ]) {
      expect(used, m).toContain(m);
    }
  });
});
