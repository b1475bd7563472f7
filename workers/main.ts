import { isHelp, RefusedError, UsageError } from '../src/cli/args.js';
import { USAGE, runToolCommand } from '../src/cli/commands.js';
import { ConfigError, describeRedisTarget, environmentSecrets, loadConfig, type Config } from '../src/config.js';
import { isDatabaseConnectionLoss } from '../src/db/connection-loss.js';
import { unreachableFrom } from '../src/reachability.js';
import { redactErrorMessage } from '../src/redact.js';
import { openQueueStatus } from '../queues/status.js';
import { startFailureReason, startNode, type Role } from './node.js';

/*
 * The CLI entry, `memfed <command> [args]`: it only dispatches. Roles start a node
 * (workers/node.ts); tools (migrate, keys, dlq, audit) live in src/cli/.
 */

const ROLES: readonly string[] = ['api', 'worker', 'all'] satisfies Role[];

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || isHelp(command) || (ROLES.includes(command) && args.some(isHelp))) {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  if (ROLES.includes(command)) {
    const extra = args.find((a) => !isHelp(a));
    if (extra !== undefined) return usageError(`${command}: unexpected argument "${extra}" (roles take their settings from the environment; memfed --help)`);
    return runRole(command as Role);
  }
  try {
    return await runToolCommand(command, args, (s) => process.stdout.write(`${s}\n`), { openQueues: (config) => openQueueStatus(config.redis, config.queuePrefix) });
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    if (err instanceof RefusedError) {
      process.stderr.write(`memfed: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function usageError(message: string): number {
  process.stderr.write(`memfed: ${message}\n`);
  return 2;
}

/** What the bin prints for a command that failed: no URL password, shared secret or SQL parameter. */
export function fatalMessage(err: unknown): string {
  const unreachable = unreachableFrom(err, configuredUrls());
  // A service that is not there is an operating condition, not a bug: one line, no stack.
  if (unreachable) return redactErrorMessage(unreachable.message, environmentSecrets());
  return redactErrorMessage(String((err as Error | undefined)?.stack ?? err), environmentSecrets());
}

function configuredUrls(): { Postgres: string; Redis: string } {
  try {
    const c = loadConfig();
    return { Postgres: c.databaseUrl, Redis: describeRedisTarget(c.redis) };
  } catch {
    return { Postgres: 'DATABASE_URL', Redis: 'REDIS_URL' };
  }
}

/** Runs a role until SIGTERM/SIGINT, then shuts down gracefully. */
async function runRole(role: Role): Promise<number> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 2;
  }
  // A lost Postgres connection may reject a query nobody awaits any more (src/db/connection-loss.ts):
  // logged, not fatal. Anything else unhandled still ends the process, as Node would.
  process.on('unhandledRejection', (err) => {
    if (isDatabaseConnectionLoss(err)) {
      process.stderr.write(`memfed: a query on a lost Postgres connection failed with nobody waiting for it (${(err as { code: string }).code}); going on\n`);
      return;
    }
    process.stderr.write(`memfed: unhandled rejection: ${fatalMessage(err)}\n`);
    process.exit(1);
  });
  // Handlers first: a SIGTERM during start-up waits for it to finish, then shuts down cleanly.
  let signalled!: (why: string) => void;
  const stopRequested = new Promise<string>((resolve) => (signalled = resolve));
  const onTerm = () => signalled('SIGTERM received');
  const onInt = () => signalled('SIGINT received');
  process.once('SIGTERM', onTerm);
  process.once('SIGINT', onInt);
  // Under `npm start` a SIGTERM to npm ends npm but is not passed on (npm 11): npm going
  // away (this process re-parented) is then the stop signal.
  // eslint-disable-next-line no-restricted-properties -- how the process was launched, not configuration
  if (process.env.npm_lifecycle_event !== undefined) {
    const parent = process.ppid;
    const watch = setInterval(() => process.ppid !== parent && signalled('npm (the parent process) exited'), 500);
    watch.unref();
    void stopRequested.finally(() => clearInterval(watch));
  }
  let node: Awaited<ReturnType<typeof startNode>>;
  try {
    node = await startNode(role, config);
  } catch (err) {
    // startNode has closed what it opened; the process ends with 1 (a straggling handle
    // gets a few seconds, then the exit is forced).
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    // The JSON log has it already (startNode); this line is for a person at a terminal.
    process.stderr.write(`memfed: ${role} failed to start: ${redactErrorMessage(startFailureReason(err), environmentSecrets())}\n`);
    setTimeout(() => process.exit(1), 5000).unref();
    return 1;
  }
  await node.close(await stopRequested);
  return 0;
}
