import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** The CA's certificate file (TLS_CA_FILE). */
  caFile: string;
  /** A certificate for 127.0.0.1/localhost, signed by this CA, usable as server and client certificate. */
  issue(name: string): CertFiles;
  read(file: string): Buffer;
}

const openssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

/** A throw-away certificate authority made with `openssl` in a temp dir (EC P-256, 1 day). */
export function createTestPki(label = 'memfed-test-ca'): TestPki {
  const dir = mkdtempSync(path.join(tmpdir(), 'memfed-pki-'));
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', `/CN=${label}`]);
  return {
    dir,
    caFile: path.join(dir, 'ca.crt'),
    issue(name) {
      const ext = path.join(dir, `${name}.ext`);
      writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n');
      openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
      openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', ext]);
      return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
    },
    read: (file) => readFileSync(file),
  };
}

/** The env that makes a node serve HTTPS with this certificate and trust this CA. */
export const tlsEnv = (pki: TestPki, files: CertFiles, extra: Record<string, string> = {}): Record<string, string> => ({ TLS_CERT_FILE: files.cert, TLS_KEY_FILE: files.key, TLS_CA_FILE: pki.caFile, ...extra });
