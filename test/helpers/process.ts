import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './env.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MEMFED_BIN = path.join(ROOT, 'workers/memfed.mjs');

export interface NodeProcess {
  proc: ChildProcess;
  output(): string;
  /** Standard output alone (a command's data, without warnings on stderr). */
  stdout(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  signal(sig: NodeJS.Signals): void;
  stop(): Promise<number | string>;
}

// Several files run at once against one Postgres (max_connections 100): a spawned node
// process gets a small pool unless the test asks for more.
const TEST_POOL_MAX = '3';

/**
 * Runs `memfed <args>` as a real child process with the given environment. `wrap`: a
 * command that execs the rest (e.g. `ip netns exec <ns>`), so the pid is still memfed's.
 */
export function spawnMemfed(args: string[], env: Record<string, string>, opts: { wrap?: string[] } = {}): NodeProcess {
  const cmd = [...(opts.wrap ?? []), process.execPath, MEMFED_BIN, ...args];
  const proc = spawn(cmd[0]!, cmd.slice(1), {
    cwd: ROOT,
    // The broken-build proof (docs/testing.md) reaches spawned nodes too.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', DATABASE_POOL_MAX: TEST_POOL_MAX, ...(process.env.MEMFED_TEST_FAULT ? { MEMFED_TEST_FAULT: process.env.MEMFED_TEST_FAULT, NODE_ENV: process.env.NODE_ENV ?? '' } : {}), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let stdout = '';
  proc.stdout!.on('data', (d) => {
    out += d;
    stdout += d;
  });
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  return {
    proc,
    output: () => out,
    stdout: () => stdout,
    exited,
    signal: (sig) => {
      if (proc.exitCode === null) proc.kill(sig);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGCONT');
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
        const r = await exited;
        clearTimeout(t);
        return r;
      }
      return exited;
    },
  };
}

export async function waitHealthy(url: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(async () => (await fetch(`${url}/api/v1/ready`).catch(() => null))?.ok, { timeoutMs, what: `${url} ready` });
}
