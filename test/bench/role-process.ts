import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface RoleProcess {
  proc: ChildProcess;
  /** The last of what the process wrote to stderr (why it failed). */
  stderrTail(): string;
  stop(): Promise<void>;
}

/**
 * `memfed <role>` as a process of its own, from the TypeScript sources (api-process.ts),
 * resolved once `/api/v1/ready` answers on `readyPort` (HTTP_PORT for api and all,
 * WORKER_HTTP_PORT for worker) within `readyTimeoutMs`.
 */
export async function startRole(role: 'api' | 'worker' | 'all', env: Record<string, string>, readyPort: number, readyTimeoutMs = 30_000): Promise<RoleProcess> {
  // BENCH_CPU_PROF_DIR: each such process writes a V8 CPU profile there when it exits.
  const profile = process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
  const proc = spawn(process.execPath, [...profile, '--import', 'tsx', path.join(ROOT, 'test/bench/api-process.ts'), role], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`memfed ${role} exited at start: ${stderr.slice(-500)}`);
    const ok = await fetch(`http://127.0.0.1:${readyPort}/api/v1/ready`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`memfed ${role} not ready after ${readyTimeoutMs / 1000} s: ${stderr.slice(-500)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    proc,
    stderrTail: () => stderr.slice(-2000),
    async stop() {
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}
