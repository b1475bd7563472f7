import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { runMigrations } from '../../src/db/migrate.js';
import { freePort, waitFor } from './env.js';

const PG_BIN = process.env.MEMFED_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** Whether this machine can run a private Postgres (the binaries are there). */
export const privatePostgresAvailable = () => existsSync(path.join(PG_BIN, 'initdb')) && existsSync(path.join(PG_BIN, 'postgres'));

/**
 * A Postgres cluster of the test's own (initdb in a temp dir, a free port, no fsync), for
 * tests whose effects are cluster-wide: a transaction held open pins the snapshot xmin,
 * which is the change-feed horizon of every database on the cluster. On the shared
 * cluster that would stall the feeds of every other test file running at the same time.
 * Postgres refuses to run as root: as root, the cluster runs as the `postgres` user.
 */
export class PrivatePostgres {
  private proc: ChildProcess | null = null;
  private dir = '';
  port = 0;

  /** URL of database `name` on this cluster (user postgres, trust auth). */
  url(name = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${name}`;
  }

  async start(): Promise<this> {
    const asUser = this.runAs();
    this.dir = mkdtempSync(path.join(tmpdir(), 'memfed-pg-'));
    if (asUser) chownSync(this.dir, asUser.uid, asUser.gid);
    const data = path.join(this.dir, 'data');
    const init = spawnSync(path.join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '--no-instructions', '-E', 'UTF8', '--locale=C'], {
      encoding: 'utf8',
      ...(asUser ?? {}),
    });
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
    this.port = await freePort();
    await this.launch();
    return this;
  }

  /** Runs the server on the cluster's data dir and port; resolves once it answers. */
  private async launch(): Promise<void> {
    const asUser = this.runAs();
    const data = path.join(this.dir, 'data');
    this.proc = spawn(
      path.join(PG_BIN, 'postgres'),
      ['-D', data, '-p', String(this.port), '-k', this.dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=40', '-c', 'shared_buffers=16MB'],
      { stdio: 'ignore', ...(asUser ?? {}) },
    );
    await waitFor(async () => {
      const sql = postgres(this.url(), { max: 1, onnotice: () => {}, connect_timeout: 2 });
      try {
        return (await sql`SELECT 1 AS ok`)[0]?.ok === 1;
      } finally {
        await sql.end({ timeout: 1 });
      }
    }, { timeoutMs: 60_000, what: 'private postgres up' });
  }

  /**
   * Shuts the server down (fast shutdown: clients are disconnected, WAL is flushed, so
   * every commit it acknowledged survives) and keeps its data: resume() starts it again.
   */
  async halt(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGINT');
    const t = setTimeout(() => p.kill('SIGQUIT'), 30_000);
    await exited;
    clearTimeout(t);
    this.proc = null;
  }

  /** Starts a halted server again, same data, same port. */
  async resume(): Promise<void> {
    if (this.proc) return;
    await this.launch();
  }

  /** Creates database `name` on this cluster and migrates it; returns its URL. */
  async createMigratedDatabase(name = 'memfed'): Promise<string> {
    const sql = postgres(this.url(), { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(`CREATE DATABASE "${name}"`);
    } finally {
      await sql.end({ timeout: 5 });
    }
    await runMigrations(this.url(name));
    return this.url(name);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      // SIGQUIT: immediate shutdown (nothing here needs to survive).
      p.kill('SIGQUIT');
      const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    this.proc = null;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  private runAs(): { uid: number; gid: number } | null {
    if (userInfo().uid !== 0) return null;
    const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    if (id.status !== 0 || gid.status !== 0) throw new Error('running as root and no postgres user to run a private cluster as');
    return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
  }
}
