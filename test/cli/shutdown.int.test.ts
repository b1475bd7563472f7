import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { peersBehind } from '../../src/store/cursors.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL, waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { spawnMemfed, type NodeProcess } from '../helpers/process.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';

/*
 * SHUTDOWN_GRACE_MS with a real worker process: a push job in flight when SIGTERM arrives
 * finishes (the peer's ack moves the cursor) before the process exits; one that outlasts
 * the grace is abandoned with the cursor unmoved, and a later worker delivers the row.
 */

/** A peer that records each push and answers only when the test releases it. */
class HoldingPeer {
  readonly arrivals: string[][] = [];
  private held: Array<{ res: ServerResponse; ids: string[] }> = [];
  hold = true;
  private server!: Server;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as { memories?: Array<{ id: string }> };
        const ids = (body.memories ?? []).map((m) => m.id);
        this.arrivals.push(ids);
        if (this.hold) this.held.push({ res, ids });
        else this.answer(res, ids);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    return this;
  }

  private answer(res: ServerResponse, ids: string[]): void {
    if (res.destroyed) return;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ applied: ids.length, deleted: 0, noop: 0, skipped: 0, dry_run: false, receiver_agent_id: 'holder', results: ids.map((id) => ({ id, status: 'applied' })) }));
  }

  release(): void {
    this.hold = false;
    for (const h of this.held.splice(0)) this.answer(h.res, h.ids);
  }

  async stop(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

interface Rig {
  db: TestDatabase;
  prefix: string;
  peer: HoldingPeer;
  apiNode: TestNode;
  workerEnv: Record<string, string>;
  procs: NodeProcess[];
}
let rig: Rig | undefined;

async function setup(graceMs: number, env: Record<string, string> = {}): Promise<Rig> {
  const db = await createTestDatabase();
  const prefix = uniquePrefix();
  const keyDir = newKeyDir();
  const peer = await new HoldingPeer().start();
  const peers = [{ id: 'holder', url: peer.url }];
  const apiNode = await startTestNode({ id: 'draining', role: 'api', db, prefix, keyDir, peers });
  const workerEnv = {
    NODE_ID: 'draining', DATABASE_URL: db.url, REDIS_URL, QUEUE_PREFIX: prefix, FED_KEY_DIR: keyDir, FED_PEERS: `holder=${peer.url}`,
    WORKER_QUEUES: 'push', WORKER_HTTP_PORT: '0', LOG_LEVEL: 'info', SHUTDOWN_GRACE_MS: String(graceMs),
    JOB_LOCK_MS: '5000', FED_REQUEST_TIMEOUT_MS: '4000', RECONCILE_INTERVAL_MS: '200', ...env,
  };
  rig = { db, prefix, peer, apiNode, workerEnv, procs: [] };
  return rig;
}

afterEach(async () => {
  if (!rig) return;
  const r = rig;
  rig = undefined;
  await Promise.all(r.procs.map((p) => p.stop()));
  await r.peer.stop();
  await r.apiNode.stop();
  await r.db.drop();
  await dropPrefix(r.prefix);
});

/** Writes one memory and waits until the worker's push of it is held at the peer. */
async function inFlight(r: Rig, worker: NodeProcess, title: string): Promise<string> {
  const c = await api(r.apiNode.url, 'POST', '/api/v1/memories', { title, content: 'x' });
  expect(c.status).toBe(201);
  await waitFor(async () => r.peer.arrivals.some((ids) => ids.includes(c.json.id)), { timeoutMs: 30_000, what: `push of ${title} at the peer (worker output: ${worker.output().slice(-500)})` });
  return c.json.id as string;
}

describe('SIGTERM with a push job in flight', () => {
  it('waits for the job within SHUTDOWN_GRACE_MS: the peer acks and the cursor moves before the process exits', async () => {
    // The request timeout is far above how long the test holds the request (no retry).
    const r = await setup(20_000, { FED_REQUEST_TIMEOUT_MS: '15000', JOB_LOCK_MS: '30000' });
    const worker = spawnMemfed(['worker'], r.workerEnv);
    r.procs.push(worker);
    const id = await inFlight(r, worker, 'drained');
    expect(await peersBehind(r.db.database.db, ['holder'])).toEqual(['holder']);
    worker.signal('SIGTERM');
    await waitFor(async () => worker.output().includes('"reason":"SIGTERM received","msg":"shutting down"'), { what: 'shutdown started' });
    // Shutdown has begun and the job is still waiting on the peer: now the peer answers.
    expect(worker.proc.exitCode).toBeNull();
    r.peer.release();
    expect(await worker.exited).toBe(0);
    expect(worker.output()).not.toContain('grace period over');
    expect(worker.output()).toContain('"msg":"stopped"');
    // The ack was recorded before exit: nothing is left to deliver, nothing was sent twice.
    expect(await peersBehind(r.db.database.db, ['holder'])).toEqual([]);
    expect(r.peer.arrivals.flat().filter((x) => x === id)).toHaveLength(1);
  }, 90_000);

  it('leaves a job longer than the grace for retry: exits after the grace, cursor unmoved, the next worker delivers', async () => {
    // A request timeout far beyond the grace: only the shutdown can end the held request.
    const r = await setup(1000, { FED_REQUEST_TIMEOUT_MS: '60000', JOB_LOCK_MS: '90000' });
    const worker = spawnMemfed(['worker'], r.workerEnv);
    r.procs.push(worker);
    const id = await inFlight(r, worker, 'abandoned');
    worker.signal('SIGTERM');
    // The peer never answers this request.
    expect(await worker.exited).toBe(0);
    expect(worker.output()).toContain('grace period over; force-closing workers');
    expect(await peersBehind(r.db.database.db, ['holder'])).toEqual(['holder']);
    // The shutdown ended the request (not its 60 s timeout), and the failure was recorded.
    const [cursor] = await r.db.database.sql`SELECT last_error, last_error_class FROM peer_cursors WHERE peer_id = 'holder'`;
    expect(cursor).toMatchObject({ last_error_class: 'transient' });
    expect(cursor!.last_error).toContain('aborted: shutting down');

    r.peer.release();
    const next = spawnMemfed(['worker'], r.workerEnv);
    r.procs.push(next);
    await waitFor(async () => (await peersBehind(r.db.database.db, ['holder'])).length === 0, { timeoutMs: 60_000, intervalMs: 200, what: `the row delivered by the next worker (output: ${next.output().slice(-500)})` });
    expect(r.peer.arrivals.flat().filter((x) => x === id).length).toBeGreaterThanOrEqual(2);
  }, 120_000);
});
