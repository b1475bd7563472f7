import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { createMetrics, processLabel } from '../src/metrics.js';

describe('the process label', () => {
  it('is PROCESS_ID when set, so a restarted process keeps its series', async () => {
    const m = createMetrics({ nodeId: 'node-a', role: 'worker', processId: 'worker-2', defaultMetrics: false });
    m.jobOutcomes.inc({ queue: 'push', outcome: 'completed' });
    expect(await m.render()).toContain('memfed_jobs_total{queue="push",outcome="completed",node="node-a",role="worker",process="worker-2"} 1');
  });

  it('is <role>-<hostname>-<pid> otherwise: two processes of one node never share a series', async () => {
    expect(processLabel('api')).toBe(`api-${os.hostname()}-${process.pid}`);
    expect(processLabel('api', '')).toBe(`api-${os.hostname()}-${process.pid}`);
    const m = createMetrics({ nodeId: 'node-a', role: 'api', defaultMetrics: false });
    m.memoryWrites.inc({ op: 'create' });
    expect(await m.render()).toContain(`memfed_memory_writes_total{op="create",node="node-a",role="api",process="api-${os.hostname()}-${process.pid}"} 1`);
  });
});
