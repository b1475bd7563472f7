import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, type ConfigError } from '../../src/config.js';
import { TlsConfigError, clientTlsOptions, loadTls, serverTlsOptions } from '../../src/tls.js';
import { createTestPki } from '../helpers/tls-certs.js';

const pki = createTestPki();
const node = pki.issue('node');
const other = pki.issue('other');
const tls = (over: Partial<Parameters<typeof loadTls>[0]>) => ({ certFile: '', keyFile: '', caFile: '', requireClientCert: false, ...over });

describe('TLS configuration', () => {
  it('FED_REQUIRE_CLIENT_CERT needs a certificate, key and CA; TLS_CERT_FILE needs TLS_KEY_FILE', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig({ NODE_ID: 'n', ...env });
        return [];
      } catch (err) {
        return (err as ConfigError).problems;
      }
    };
    expect(problems({ FED_REQUIRE_CLIENT_CERT: 'true', TLS_CERT_FILE: node.cert, TLS_KEY_FILE: node.key })).toEqual([expect.stringMatching(/^FED_REQUIRE_CLIENT_CERT: needs TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE/)]);
    expect(problems({ FED_REQUIRE_CLIENT_CERT: 'true', TLS_CA_FILE: pki.caFile })).toHaveLength(1);
    expect(problems({ TLS_CERT_FILE: node.cert })).toEqual(['TLS_CERT_FILE: needs TLS_KEY_FILE too (set both or neither)']);
    expect(loadConfig({ NODE_ID: 'n', FED_REQUIRE_CLIENT_CERT: 'yes', TLS_CERT_FILE: node.cert, TLS_KEY_FILE: node.key, TLS_CA_FILE: pki.caFile }).tls).toEqual({ certFile: node.cert, keyFile: node.key, caFile: pki.caFile, requireClientCert: true });
  });

  it('no TLS setting means plain HTTP and the system roots', async () => {
    const material = await loadTls(tls({}));
    expect(material).toBeNull();
    expect(serverTlsOptions(material)).toBeNull();
    expect(clientTlsOptions(material)).toEqual({ minVersion: 'TLSv1.2' });
  });

  it('a CA alone verifies peers without serving HTTPS', async () => {
    const material = await loadTls(tls({ caFile: pki.caFile }));
    expect(serverTlsOptions(material)).toBeNull();
    expect(clientTlsOptions(material).ca).toEqual(pki.read(pki.caFile));
  });

  it('with a CA the server asks for client certificates but lets clients without one finish the handshake', async () => {
    const withCa = serverTlsOptions(await loadTls(tls({ certFile: node.cert, keyFile: node.key, caFile: pki.caFile })));
    expect(withCa).toMatchObject({ requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' });
    expect(serverTlsOptions(await loadTls(tls({ certFile: node.cert, keyFile: node.key })))).toMatchObject({ requestCert: false });
  });

  it('refuses unreadable files, non-PEM content and a key of another certificate, naming the variable but never the content', async () => {
    const garbage = path.join(pki.dir, 'garbage.pem');
    writeFileSync(garbage, 'secret-looking-content-123');
    const cases: Array<[Parameters<typeof loadTls>[0], RegExp]> = [
      [tls({ caFile: '/nonexistent/ca.crt' }), /^TLS_CA_FILE: cannot read \/nonexistent\/ca\.crt \(ENOENT\)$/],
      [tls({ certFile: garbage, keyFile: node.key }), /^TLS_CERT_FILE: .* holds no PEM certificate$/],
      [tls({ certFile: node.cert, keyFile: garbage }), /^TLS_KEY_FILE: .* holds no PEM private key$/],
      [tls({ certFile: node.cert, keyFile: other.key }), /^TLS_KEY_FILE: the key does not belong to the certificate in TLS_CERT_FILE$/],
    ];
    for (const [settings, message] of cases) {
      const err = await loadTls(settings).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TlsConfigError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain('secret-looking-content');
    }
  });
});
