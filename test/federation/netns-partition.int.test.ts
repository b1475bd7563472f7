import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SetChecker, problems, summarize } from '../helpers/checker.js';
import { waitFor } from '../helpers/env.js';
import { netnsUnavailable } from '../helpers/netns.js';
import { NETNS_PORT, startNetnsMesh } from '../helpers/netns-mesh.js';
import { skipNote } from '../helpers/skip.js';

/*
 * Real network partitions: three `memfed all` processes, each in its own network
 * namespace, peered through a router namespace where a partition is a blackhole policy
 * rule (packets dropped silently, as a dead link drops them: TCP sees timeouts, not
 * refusals). The checker judges every history.
 */
const unavailable = netnsUnavailable();
if (unavailable) console.warn(`netns-partition: skipped: ${unavailable}`);
const skip = unavailable !== null;
const note = skipNote(skip, unavailable ?? '');

type Mesh = Awaited<ReturnType<typeof startNetnsMesh>>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function holds(mesh: Mesh, node: string, id: string): Promise<boolean> {
  const n = mesh.nodes.find((x) => x.id === node)!;
  const r = await n.db.database.sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM memories WHERE id = ${id}`;
  return r[0]!.n === 1;
}

/**
 * Cuts the network, proves the cut is real (a write acknowledged at `probeAt` does not
 * reach `probeTo` while it lasts, and a TCP connect times out), heals, proves the heal.
 */
async function cutDuring(mesh: Mesh, checker: SetChecker, cut: () => Promise<void>, probe: { at: string; to: string; from: string; dial: string; reachable: boolean }): Promise<void> {
  const { lab, nodes } = mesh;
  await cut();
  checker.markFault();
  expect(await lab.canConnect(probe.from, probe.dial, NETNS_PORT)).toBe(probe.reachable);
  const marker = await checker.write(nodes.find((n) => n.id === probe.at)!, { timeoutMs: 10_000 });
  expect(marker.outcome).toBe('acked');
  // Longer than a push attempt (FED_REQUEST_TIMEOUT_MS 1500) and a catch-up tick (2 s).
  await sleep(4000);
  expect(await holds(mesh, probe.to, marker.id)).toBe(false);
  await lab.heal();
  checker.markHealed();
  expect(await lab.canConnect(probe.from, probe.dial, NETNS_PORT)).toBe(true);
  await waitFor(() => holds(mesh, probe.to, marker.id), { timeoutMs: 30_000, what: `${probe.to} gets ${marker.id} after the heal` });
}

describe.skipIf(skip)(`real partitions between network namespaces, W=1${note}`, () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await startNetnsMesh(['a', 'b', 'c'], { FED_QUORUM_W: '1' });
  }, 90_000);
  afterAll(async () => {
    await mesh?.destroy();
  });

  // Two cuts in one history (one checker per mesh: it owns every row the nodes hold).
  // The second is one way: every packet into c is dropped, c's own still leave (its SYNs
  // and requests on open connections reach a and b; the answers never come back). With
  // TCP no new connection completes in either direction, but what was in flight is
  // committed by the receiver and its answer lost: the re-send must be a no-op.
  it('isolates c, then drops every packet into c one way, during a write burst at every node: every write is acknowledged and, healed, converges with nothing lost or applied twice', async () => {
    const checker = new SetChecker('netns-w1', mesh.nodes.map((n) => n.view()));
    checker.startSampling();
    const burst = checker.burst(mesh.nodes, 400, { concurrency: 3, spacingMs: 40, timeoutMs: 10_000, retries: 2 });
    await sleep(1000);
    const t0 = Date.now();
    await cutDuring(mesh, checker, () => mesh.lab.isolate('c'), { at: 'a', to: 'c', from: 'a', dial: 'c', reachable: false });
    const isolatedMs = Date.now() - t0;
    const t1 = Date.now();
    await cutDuring(
      mesh,
      checker,
      async () => {
        await mesh.lab.partitionOneWay('a', 'c');
        await mesh.lab.partitionOneWay('b', 'c');
        expect(mesh.lab.cut()).toEqual(['a->c', 'b->c']);
      },
      { at: 'a', to: 'c', from: 'c', dial: 'a', reachable: false },
    );
    const oneWayMs = Date.now() - t1;
    expect(mesh.lab.cut()).toEqual([]);
    await burst;
    const report = await checker.verify({ deadlineMs: 60_000 });
    console.log(summarize(report, { cuts: ['c isolated', 'a->c and b->c one way'], isolatedMs, oneWayMs }));
    expect(problems(report, { acked: 150, samples: 10 })).toEqual([]);
  }, 180_000);
});

describe.skipIf(skip)(`real partitions between network namespaces, W=2${note}`, () => {
  let mesh: Mesh;
  beforeAll(async () => {
    mesh = await startNetnsMesh(['a', 'b', 'c'], { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '4000' });
  }, 90_000);
  afterAll(async () => {
    await mesh?.destroy();
  });

  it('isolates c: a and b still meet the quorum with each other, c answers 503 quorum_not_met for what it commits alone, and all converge after the heal', async () => {
    const checker = new SetChecker('netns-isolate-w2', mesh.nodes.map((n) => n.view()));
    checker.startSampling();
    const [a, b, c] = mesh.nodes as [Mesh['nodes'][number], Mesh['nodes'][number], Mesh['nodes'][number]];
    const burst = checker.burst([a, b], 160, { concurrency: 2, spacingMs: 40, timeoutMs: 12_000, retries: 2 });
    await sleep(1000);
    await cutDuring(
      mesh,
      checker,
      async () => {
        await mesh.lab.isolate('c');
        const alone = await checker.write(c, { timeoutMs: 12_000, retries: 0 });
        expect({ outcome: alone.outcome, status: alone.status }).toEqual({ outcome: 'committed', status: 503 });
      },
      { at: 'a', to: 'c', from: 'b', dial: 'c', reachable: false },
    );
    await burst;
    const report = await checker.verify({ deadlineMs: 60_000 });
    console.log(summarize(report, { cut: 'c isolated, W=2' }));
    expect(problems(report, { acked: 60, samples: 10 })).toEqual([]);
  }, 180_000);
});
