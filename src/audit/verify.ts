import type { KeyObject } from 'node:crypto';
import type { Db } from '../db/client.js';
import { listCheckpoints, readAuditPage } from '../store/audit.js';
import { ChainVerifier, type Checkpoint, type VerifyResult } from './chain.js';

const PAGE = 5000;

/**
 * Walks the stored chain from `from` (default 1) in pages, holding it against every
 * stored checkpoint plus any supplied from peers. Memory stays flat for any chain length.
 */
export async function verifyStoredChain(
  db: Db,
  opts: { nodeId: string; keys: Map<string, KeyObject>; from?: number; extraCheckpoints?: Checkpoint[] },
): Promise<VerifyResult> {
  const checkpoints: Checkpoint[] = [...(opts.extraCheckpoints ?? [])];
  for (let after = 0; ; ) {
    const page = await listCheckpoints(db, after, 10_000);
    checkpoints.push(...page);
    if (page.length < 10_000) break;
    after = page.at(-1)!.seq;
  }
  const from = opts.from ?? 1;
  const verifier = new ChainVerifier({ nodeId: opts.nodeId, keys: opts.keys, from, checkpoints });
  // With from > 1 the verifier wants the anchor entry (from - 1) first.
  let next = from > 1 ? from - 1 : 1;
  for (;;) {
    const page = await readAuditPage(db, next, PAGE);
    if (page.length === 0) break;
    if (await verifier.pushBatch(page)) break;
    next = page.at(-1)!.seq + 1;
    if (page.length < PAGE) break;
  }
  return verifier.finish();
}
