import { describe, expect, it } from 'vitest';
import { peerState } from '../../src/status/state.js';

describe('peer state', () => {
  it('is active while neither the last push nor the last pull failed', () => {
    expect(peerState({ paused: false, pushFailureStreak: 0, pullFailureStreak: 0 })).toBe('active');
  });

  it('is failing once the last push failed, whatever the pulls do', () => {
    expect(peerState({ paused: false, pushFailureStreak: 1, pullFailureStreak: 0 })).toBe('failing');
  });

  it('is failing once the last pull failed, whatever the pushes do', () => {
    expect(peerState({ paused: false, pushFailureStreak: 0, pullFailureStreak: 3 })).toBe('failing');
  });

  it('is paused when paused, even with failures recorded before the pause', () => {
    expect(peerState({ paused: true, pushFailureStreak: 0, pullFailureStreak: 0 })).toBe('paused');
    expect(peerState({ paused: true, pushFailureStreak: 5, pullFailureStreak: 2 })).toBe('paused');
  });
});
