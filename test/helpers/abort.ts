/**
 * A job processor's body that runs until its abort signal fires (or `giveUpMs` passes):
 * resolves with the signal's reason, or undefined when it never fired.
 */
export function untilAborted(signal: AbortSignal | undefined, giveUpMs = 15_000): Promise<unknown> {
  return new Promise((resolve) => {
    const giveUp = setTimeout(() => resolve(undefined), giveUpMs);
    signal?.addEventListener('abort', () => {
      clearTimeout(giveUp);
      resolve(signal.reason);
    });
  });
}
