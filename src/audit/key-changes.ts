import type { KeyObject } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { AuditSigner } from './chain.js';
import type { AuditRecorder } from './events.js';

/**
 * At start: a freshly generated node key, or a chain last signed by another key (the
 * node's key was replaced), is a `key.changed` event. A replaced key whose public half
 * is no longer kept would leave older entries unverifiable: warn how to keep it.
 */
export function recordKeyChanges(
  audit: AuditRecorder,
  logger: Logger,
  facts: { nodeId: string; generated: { pubPath: string } | null; chainHeadKeyId: string | null; signer: AuditSigner | null; trustedKeys: Map<string, KeyObject> },
): void {
  const { nodeId, generated, chainHeadKeyId: last, signer, trustedKeys } = facts;
  if (generated) audit.record({ kind: 'key.changed', subject: nodeId, details: { action: 'generated', public_key_file: generated.pubPath } });
  if (!signer || !last || last === signer.keyId) return;
  const trusted = trustedKeys.has(last);
  // The event id makes a restart with the same rotation record it once.
  audit.record({ kind: 'key.changed', eventId: `key-rotated-${last}-${signer.keyId}`, subject: nodeId, details: { action: 'rotated', from_key_id: last, to_key_id: signer.keyId, previous_key_trusted: trusted } });
  if (!trusted) logger.warn({ from: last }, 'node key changed; keep the old public key as retired/<id>.<label>.pub in FED_KEY_DIR so older audit entries still verify');
}
