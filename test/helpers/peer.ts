import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import * as ed from '@noble/ed25519';
import { getSigningBytes, newNonce, postSigningBytes, privateKeyObject, signatureHeader } from '../../src/federation/signing.js';

/** A fake federation peer with its own key: signs requests the way a sender would. */
export class FakePeer {
  pub!: Uint8Array;

  /** `priv`: sign with an existing raw 32-byte key (e.g. a real node's `.priv`) instead of a fresh one. */
  constructor(readonly id: string, readonly priv: Buffer = randomBytes(32)) {}

  async init(): Promise<this> {
    this.pub = await ed.getPublicKeyAsync(this.priv);
    return this;
  }

  /** Enrols this peer on a node: writes its .pub into the node's key dir. */
  enrolIn(keyDir: string): void {
    writeFileSync(path.join(keyDir, `${this.id}.pub`), this.pub);
  }

  signPost(body: Uint8Array, nonce: string): string {
    return signatureHeader(privateKeyObject(this.priv), postSigningBytes(body, nonce));
  }

  signGet(p: string, query: string, nonce: string): string {
    return signatureHeader(privateKeyObject(this.priv), getSigningBytes(p, query, nonce));
  }

  /** A complete signed push request (headers + exact body bytes). */
  push(body: unknown, opts: { nonce?: string; bareNonce?: boolean } = {}): { headers: Record<string, string>; body: Buffer } {
    const raw = Buffer.from(JSON.stringify(body));
    const nonce = opts.nonce ?? (opts.bareNonce ? randomUUID() : newNonce());
    return {
      body: raw,
      headers: { 'content-type': 'application/json', 'x-peer-id': this.id, 'x-memory-nonce': nonce, 'x-memory-sig': this.signPost(raw, nonce) },
    };
  }
}

export async function send(url: string, req: { headers: Record<string, string>; body: Buffer }) {
  const res = await fetch(`${url}/api/v1/sync/push`, { method: 'POST', headers: req.headers, body: req.body });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

/** A memory object as a peer would send it. */
export function wireMemory(over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = '2026-01-01T00:00:00.000000+00:00';
  return {
    id: randomUUID(),
    tier: 'long',
    namespace: 'fed/test',
    title: 'from a peer',
    content: 'hello',
    tags: [],
    priority: 5,
    confidence: 1,
    source: 'api',
    access_count: 0,
    created_at: now,
    updated_at: now,
    metadata: { agent_id: 'peer-agent' },
    ...over,
  };
}
