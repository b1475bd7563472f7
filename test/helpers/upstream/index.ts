import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import * as ed from '@noble/ed25519';
import { pollOnce, type PollResult, type PollTarget } from './poller.js';
import { UpstreamPeerServer, type UpstreamPeerOptions } from './receiver.js';
import { UpstreamSender } from './sender.js';
import type { UpLink, UpMemory } from './serde.js';
import { chronoNow } from './store.js';

export { parseJson, rustJson, type JNode } from './json.js';
export { pollOnce, syncSinceUrl, urlencodingEncode, type PollResult, type PollTarget } from './poller.js';
export { BODY_LIMIT, globMatch, projectable, UpstreamPeerServer, type PushRecord, type RefusedRow, type UpstreamPeerOptions } from './receiver.js';
export { UpstreamSender, wireOf, type SendResult } from './sender.js';
export { deMemory, parsePushBody, type UpLink, type UpMemory, type UpPushBody } from './serde.js';
export { NonceCache, verifyUpstreamSig } from './signing.js';
export { UpstreamStore } from './store.js';
export * as upstreamValidate from './validate.js';

export interface UpstreamPeerInit extends UpstreamPeerOptions {
  /** Raw 32-byte Ed25519 signing key; fresh when absent. `sign: false` sends unsigned pushes. */
  priv?: Buffer;
  sign?: boolean;
  /** The API key its outbound requests carry (its own `[api] api_key`). */
  outboundApiKey?: string;
}

/**
 * An ai-memory 0.7 daemon for the tests: the federation receiver (UpstreamPeerServer), its
 * push sender (UpstreamSender) and its unsigned catch-up poller (pollOnce), over one store.
 */
export class UpstreamPeer extends UpstreamPeerServer {
  readonly priv: Buffer;
  pub!: Uint8Array;
  readonly sender: UpstreamSender;

  constructor(readonly init: UpstreamPeerInit) {
    super(init);
    this.priv = init.priv ?? randomBytes(32);
    this.sender = new UpstreamSender(init.id, init.sign === false ? undefined : this.priv, init.outboundApiKey);
  }

  get id(): string {
    return this.opts.id;
  }

  override async start(port = 0): Promise<this> {
    this.pub = await ed.getPublicKeyAsync(this.priv);
    return super.start(port);
  }

  /** Writes `<id>.pub` into another node's key dir (enrols this daemon there). */
  enrolIn(keyDir: string): void {
    writeFileSync(path.join(keyDir, `${this.id}.pub`), this.pub);
  }

  /** A memory as this daemon would create it locally (upstream defaults, chrono timestamps). */
  newMemory(over: Partial<UpMemory> = {}): UpMemory {
    const now = chronoNow();
    return {
      id: randomUUID(),
      tier: 'long',
      namespace: 'global',
      title: `upstream ${randomUUID().slice(0, 8)}`,
      content: 'written on an ai-memory node',
      tags: [],
      priority: 5,
      confidence: 1,
      source: 'api',
      access_count: 0,
      created_at: now,
      updated_at: now,
      metadata: { agent_id: this.id, scope: 'shared' },
      reflection_depth: 0,
      memory_kind: 'observation',
      citations: [],
      confidence_source: 'caller_provided',
      version: 1,
      ...over,
    };
  }

  /** A local write (stored through insert_if_newer), then pushed to `to` the way upstream fans out. */
  async write(mem: UpMemory, to: string[] = []) {
    this.store.insertIfNewer(mem);
    return Promise.all(to.map((u) => this.sender.pushMemory(u, mem)));
  }

  /** A local delete (hard), pushed as `deletions`. */
  async remove(id: string, to: string[] = []) {
    this.store.delete(id);
    return Promise.all(to.map((u) => this.sender.pushDeletion(u, id)));
  }

  /** A local archive, pushed as `archives`. */
  async archiveLocal(id: string, to: string[] = []) {
    this.store.archive(id, 'archive');
    return Promise.all(to.map((u) => this.sender.pushArchive(u, id)));
  }

  /** A local restore, pushed as `restores`. */
  async restoreLocal(id: string, to: string[] = []) {
    this.store.restore(id);
    return Promise.all(to.map((u) => this.sender.pushRestore(u, id)));
  }

  /** A local link, pushed as `links`. */
  async linkLocal(link: UpLink, to: string[] = []) {
    this.store.createLinkInbound(link, 'self_signed');
    return Promise.all(to.map((u) => this.sender.pushLink(u, link)));
  }

  /** One catch-up tick against `target` (a memfed node or another peer). */
  poll(target: PollTarget): Promise<PollResult> {
    return pollOnce(this.store, this.id, target, { apiKey: this.init.outboundApiKey, refused: this.refused });
  }
}
