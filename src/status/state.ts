/**
 * A peer's state at a glance (docs/operations.md, Status at a glance):
 * - `paused`: an operator paused it (runtime peer management); nothing is pushed to or
 *   pulled from it, so its failures do not make it failing;
 * - `failing`: the last push attempt to it or the last catch-up pull from it failed (a
 *   streak above 0: an error was recorded and no success has cleared it since);
 * - `active`: neither.
 */
export type PeerState = 'active' | 'paused' | 'failing';

export interface PeerStateInput {
  /** From runtime peer management; peers configured in FED_PEERS are never paused. */
  paused: boolean;
  /** Push attempts failed in a row (peer_cursors.failure_streak). */
  pushFailureStreak: number;
  /** Pulls failed or halted in a row (peer_watermarks.failure_streak). */
  pullFailureStreak: number;
}

export function peerState(p: PeerStateInput): PeerState {
  if (p.paused) return 'paused';
  if (p.pushFailureStreak > 0 || p.pullFailureStreak > 0) return 'failing';
  return 'active';
}
