import type { Config } from '../config.js';
import type { Logger } from '../logger.js';

/** Minimal Redis surface the breaker needs (an ioredis client fits). */
export interface BreakerRedis {
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  hgetall(key: string): Promise<Record<string, string>>;
}

/**
 * How the next batch to a peer is sent:
 * - `split`: normally; a batch refused whole is bisected to find the refused rows.
 * - `whole`: the breaker is open: one request; if the peer refuses it whole, every row is
 *   dead-lettered with the peer's reason instead of ~2N requests of bisection.
 * - `probe`: the breaker is open and this caller won the probe: one normal `split` attempt.
 */
export type BreakerMode = 'split' | 'whole' | 'probe';

/**
 * What one batch told about the peer: `accepted` = it took at least one row (closes the
 * breaker, resets the count); `refused_whole` = a batch of several rows refused as a whole
 * and no row taken (counts toward opening); `neutral` = neither (a one-row batch, or every
 * row refused one by one in the peer's per-row results, which costs no bisection).
 */
export type BatchVerdict = 'accepted' | 'refused_whole' | 'neutral';

export interface BreakerState {
  open: boolean;
  /** Consecutive `refused_whole` batches. */
  refusedBatches: number;
  openedAt: number | null;
  probeAt: number | null;
  reason: string | null;
}

export interface BreakerOptions {
  /** Consecutive whole-refused batches that open the breaker; 0 = breaker off. */
  batches: number;
  probeMs: number;
  now?: () => number;
}

// Forget a peer's state after a week without a batch (a peer removed from FED_PEERS).
const TTL_MS = 7 * 24 * 3600_000;

// Open and the probe is due: claim it (move probe_at on) so one caller across every
// worker process probes per interval; the others keep sending whole batches.
const MODE = `
if redis.call('HGET', KEYS[1], 'open') ~= '1' then return 'split' end
local now = tonumber(ARGV[1])
local probeAt = tonumber(redis.call('HGET', KEYS[1], 'probe_at') or '0')
if now < probeAt then return 'whole' end
redis.call('HSET', KEYS[1], 'probe_at', now + tonumber(ARGV[2]))
return 'probe'`;

// Returns 'opened', 'closed' or ''.
const RECORD = `
local verdict = ARGV[1]
if verdict == 'accepted' then
  local was = redis.call('HGET', KEYS[1], 'open')
  redis.call('DEL', KEYS[1])
  if was == '1' then return 'closed' end
  return ''
end
if verdict ~= 'refused_whole' then return '' end
local n = redis.call('HINCRBY', KEYS[1], 'refused', 1)
redis.call('HSET', KEYS[1], 'reason', ARGV[5])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
if redis.call('HGET', KEYS[1], 'open') == '1' or n < tonumber(ARGV[2]) then return '' end
local now = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'open', '1', 'opened_at', now, 'probe_at', now + tonumber(ARGV[4]))
return 'opened'`;

/**
 * Per-peer circuit breaker for a peer that refuses whole batches (docs/operations.md,
 * "Refusal breaker"). Without it every such batch is bisected down to single rows
 * (2N - 1 requests for N rows) only to dead-letter them all. Its state is in Redis, so
 * every worker process (push and DLQ replay run on any of them) sees the same breaker.
 * It only decides how rows are sent, never whether they are kept: a lost or unreadable
 * state falls back to `split`, today's behaviour.
 */
export class RefusalBreaker {
  private readonly now: () => number;

  constructor(
    private readonly redis: BreakerRedis,
    private readonly prefix: string,
    private readonly opts: BreakerOptions,
    private readonly logger?: Logger,
  ) {
    this.now = opts.now ?? Date.now;
  }

  private key(peerId: string) {
    return `${this.prefix}:refusal-breaker:${peerId}`;
  }

  get enabled(): boolean {
    return this.opts.batches > 0;
  }

  async mode(peerId: string): Promise<BreakerMode> {
    if (!this.enabled) return 'split';
    try {
      return (await this.redis.eval(MODE, 1, this.key(peerId), this.now(), this.opts.probeMs)) as BreakerMode;
    } catch (err) {
      this.logger?.warn({ err, peer: peerId }, 'refusal breaker state unreadable; sending in split mode');
      return 'split';
    }
  }

  /** Records a batch's verdict; returns what changed. */
  async record(peerId: string, verdict: BatchVerdict, reason: string): Promise<'opened' | 'closed' | null> {
    if (!this.enabled || verdict === 'neutral') return null;
    try {
      const r = await this.redis.eval(RECORD, 1, this.key(peerId), verdict, this.opts.batches, this.now(), this.opts.probeMs, reason.slice(0, 500), TTL_MS);
      const change = r === 'opened' || r === 'closed' ? r : null;
      if (change === 'opened') this.logger?.warn({ peer: peerId, batches: this.opts.batches, reason }, 'refusal breaker opened: peer refuses whole batches; they are dead-lettered unsplit until a probe succeeds');
      if (change === 'closed') this.logger?.info({ peer: peerId }, 'refusal breaker closed: peer accepts rows again');
      return change;
    } catch (err) {
      this.logger?.warn({ err, peer: peerId }, 'could not record the refusal breaker verdict');
      return null;
    }
  }

  async state(peerId: string): Promise<BreakerState> {
    const h = await this.redis.hgetall(this.key(peerId));
    const num = (v: string | undefined) => (v === undefined ? null : Number(v));
    return { open: h.open === '1', refusedBatches: Number(h.refused ?? 0), openedAt: num(h.opened_at), probeAt: num(h.probe_at), reason: h.reason ?? null };
  }
}

/** The node's breaker (PUSH_REFUSAL_BREAKER_*, keys under QUEUE_PREFIX): one state for every process of the node. */
export const refusalBreakerFor = (redis: BreakerRedis, config: Pick<Config, 'queuePrefix' | 'push'>, logger?: Logger) => new RefusalBreaker(redis, config.queuePrefix, config.push.refusalBreaker, logger);
