import { redactUrl } from './redact.js';

/*
 * "Postgres (or Redis) is not there" is the commonest start-up failure and deserves one
 * line an operator can act on: which service, at which URL (password masked), why, and
 * where the README says how to start it - not a driver stack trace.
 */

export type Service = 'Postgres' | 'Redis';

/** The README section that says how to start the two services. */
export const START_SERVICES_HINT = 'start it, or point the URL at a running one (README: "Postgres and Redis")';

/** No member of a Redis Cluster or Sentinel set answered (queues/connection.ts pingRedis). */
export const REDIS_TOPOLOGY_UNREACHABLE = 'REDIS_TOPOLOGY_UNREACHABLE';

// Socket-level failures (Node), postgres.js's own connect timeout, the server states in
// which Postgres refuses connections (57P03 starting up / shutting down, 53300 too many
// clients), and a Redis topology none of whose members answered.
const UNREACHABLE_CODES = new Set([REDIS_TOPOLOGY_UNREACHABLE, 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'CONNECT_TIMEOUT', '57P03', '53300']);

/**
 * The error in `err`'s chain (itself, AggregateError members, causes: drizzle wraps the
 * driver's error) that says the service could not be reached, or undefined.
 */
function unreachableCause(err: unknown, depth = 0): { code?: unknown; port?: unknown; message?: unknown } | undefined {
  if (depth > 4 || err === null || typeof err !== 'object') return undefined;
  const e = err as { code?: unknown; errors?: unknown; cause?: unknown; message?: unknown };
  if (typeof e.code === 'string' && UNREACHABLE_CODES.has(e.code)) return e;
  for (const inner of Array.isArray(e.errors) ? e.errors : []) {
    const found = unreachableCause(inner, depth + 1);
    if (found) return found;
  }
  return unreachableCause(e.cause, depth + 1);
}

/** True when `err` says the service could not be reached at all (not: it answered with an error). */
export function isUnreachable(err: unknown): boolean {
  return unreachableCause(err) !== undefined;
}

/** A service that did not answer at start-up; its message is the whole story, in one line. */
export class ServiceUnreachable extends Error {
  constructor(
    readonly service: Service,
    url: string,
    reason: string,
  ) {
    super(`cannot reach ${service} at ${redactUrl(url)} (${reason}); ${START_SERVICES_HINT}`);
    this.name = 'ServiceUnreachable';
  }
}

/** One line for the cause of an unreachable error: "connect ECONNREFUSED 127.0.0.1:5999". */
export function reasonOf(err: unknown): string {
  const e = (unreachableCause(err) ?? err) as { message?: unknown; errors?: Array<{ message?: unknown }> } | undefined;
  const msg = typeof e?.message === 'string' && e.message !== '' ? e.message : typeof e?.errors?.[0]?.message === 'string' ? e.errors[0].message : String(err);
  return msg.split('\n')[0]!.trim();
}

/**
 * Runs `attempt` until it succeeds or `waitMs` has passed (a service that is still coming
 * up, e.g. under compose, gets that long); an unreachable failure at the deadline becomes a
 * ServiceUnreachable, any other failure (wrong password, missing role) is thrown as it is.
 */
export async function waitForService(service: Service, url: string, waitMs: number, attempt: () => Promise<void>, onWait?: (reason: string) => void): Promise<void> {
  const deadline = Date.now() + waitMs;
  let warned = false;
  for (;;) {
    try {
      await attempt();
      return;
    } catch (err) {
      if (!isUnreachable(err)) throw err;
      if (Date.now() >= deadline) throw new ServiceUnreachable(service, url, reasonOf(err));
      if (!warned) onWait?.(reasonOf(err));
      warned = true;
      await new Promise((r) => setTimeout(r, Math.min(500, Math.max(0, deadline - Date.now()))));
    }
  }
}

/**
 * For a tool (dlq, audit, ...) that failed on a connection: the ServiceUnreachable line
 * for the service the failed socket pointed at (matched by port), or null when `err` is
 * not a connection failure.
 */
export function unreachableFrom(err: unknown, urls: Record<Service, string>): ServiceUnreachable | null {
  if (err instanceof ServiceUnreachable) return err;
  if (!isUnreachable(err)) return null;
  const port = unreachableCause(err)?.port;
  const portOf = (u: string, fallback: string) => {
    try {
      return new URL(u).port || fallback;
    } catch {
      return fallback;
    }
  };
  const redis = port !== undefined && String(port) === portOf(urls.Redis, '6379');
  const service: Service = redis ? 'Redis' : 'Postgres';
  return new ServiceUnreachable(service, urls[service], reasonOf(err));
}
