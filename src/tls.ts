import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Config } from './config.js';

/*
 * TLS material for the node's listeners and its outbound peer calls, read once at start.
 * One certificate and key per node (TLS_CERT_FILE/TLS_KEY_FILE) serve HTTPS and are the
 * client certificate it presents to peers; TLS_CA_FILE is what it trusts, both for peers'
 * server certificates and for client certificates it receives.
 */

export interface TlsMaterial {
  /** This node's certificate chain and key (PEM); absent = the node serves plain HTTP. */
  identity: { cert: Buffer; key: Buffer } | null;
  /** Trusted CA bundle (PEM); absent = the system's default roots. */
  ca: Buffer | null;
  /** Whether /api/v1/sync/* demands a client certificate signed by `ca`. */
  requireClientCert: boolean;
}

export class TlsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsConfigError';
  }
}

async function readPem(variable: string, file: string, kind: 'certificate' | 'private key'): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (err) {
    throw new TlsConfigError(`${variable}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  // Only the kind of PEM block is reported, never the file's content (a key is a secret).
  const marker = kind === 'certificate' ? /-----BEGIN CERTIFICATE-----/ : /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;
  if (!marker.test(data.toString('latin1'))) throw new TlsConfigError(`${variable}: ${file} holds no PEM ${kind}`);
  return data;
}

/** Reads the configured PEM files; null when no TLS setting is used. Throws TlsConfigError. */
export async function loadTls(tls: Config['tls']): Promise<TlsMaterial | null> {
  if (!tls.certFile && !tls.caFile) return null;
  const identity = tls.certFile
    ? { cert: await readPem('TLS_CERT_FILE', tls.certFile, 'certificate'), key: await readPem('TLS_KEY_FILE', tls.keyFile, 'private key') }
    : null;
  const ca = tls.caFile ? await readPem('TLS_CA_FILE', tls.caFile, 'certificate') : null;
  if (identity) {
    try {
      const cert = new X509Certificate(identity.cert);
      if (!cert.checkPrivateKey(createPrivateKey(identity.key))) throw new TlsConfigError('TLS_KEY_FILE: the key does not belong to the certificate in TLS_CERT_FILE');
    } catch (err) {
      if (err instanceof TlsConfigError) throw err;
      throw new TlsConfigError(`TLS_CERT_FILE/TLS_KEY_FILE: not a usable certificate and key (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  return { identity, ca, requireClientCert: tls.requireClientCert };
}

/** Options for node:https createServer; null = serve plain HTTP. */
export function serverTlsOptions(material: TlsMaterial | null): { cert: Buffer; key: Buffer; ca?: Buffer; requestCert: boolean; rejectUnauthorized: false; minVersion: 'TLSv1.2' } | null {
  if (!material?.identity) return null;
  return {
    ...material.identity,
    ...(material.ca ? { ca: material.ca } : {}),
    // Ask every client for a certificate when there is a CA to check it against, but let
    // the handshake finish without one: the API stays open to clients without
    // certificates, and federation routes refuse them per request (src/api/middleware/client-cert.ts).
    requestCert: material.ca !== null,
    rejectUnauthorized: false,
    // TLS 1.0/1.1 are refused, as ai-memory does.
    minVersion: 'TLSv1.2',
  };
}

/** Connect options of the outbound peer client: verify against the CA, present our certificate. */
export function clientTlsOptions(material: TlsMaterial | null): { ca?: Buffer; cert?: Buffer; key?: Buffer; minVersion: 'TLSv1.2' } {
  return {
    ...(material?.ca ? { ca: material.ca } : {}),
    ...(material?.identity ?? {}),
    minVersion: 'TLSv1.2',
  };
}
